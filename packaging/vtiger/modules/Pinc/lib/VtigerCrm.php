<?php
/*
 * pinc's vtiger module: Pinc_Crm answered by vtiger itself (7.x, 8.x, SalesPlatform 7.2).
 * Only vtiger's own APIs and tables: PBXManager's settings and phone lookup, the users'
 * CRM Phone Extension, Users_Privileges_Model for every permission.
 */

require_once __DIR__ . '/Crm.php';

class Pinc_VtigerCrm implements Pinc_Crm {
    const SETTINGS_TABLE = 'vtiger_pinc_settings';

    private $user;

    public function __construct() {
        $this->user = Users_Record_Model::getCurrentUserModel();
    }

    public function userExtension() {
        return trim((string) $this->user->get('phone_crm_extension'));
    }

    public function userName() {
        return self::nameOf($this->user->get('first_name'), $this->user->get('last_name'), $this->user->get('user_name'));
    }

    public function isAdmin() {
        return (bool) $this->user->isAdminUser();
    }

    public function isPermitted($module, $action, $recordId = '') {
        return (bool) Users_Privileges_Model::isPermitted($module, $action, $recordId === '' ? false : $recordId);
    }

    public function colleagues() {
        $db = PearDatabase::getInstance();
        $result = $db->pquery(
            "SELECT first_name, last_name, user_name, phone_crm_extension FROM vtiger_users"
            . " WHERE status = 'Active' AND deleted = 0 AND phone_crm_extension <> '' AND id <> ?"
            . " ORDER BY first_name, last_name",
            array($this->user->getId()));
        $out = array();
        while ($row = $db->fetchByAssoc($result, -1, false)) {
            $out[] = array(
                'name' => self::nameOf($row['first_name'], $row['last_name'], $row['user_name']),
                'ext' => trim($row['phone_crm_extension']),
            );
        }
        return $out;
    }

    public function lookupNumber($digits) {
        // vtiger's own lookup (SalesPlatform's matches the last 10 digits); it builds SQL from
        // the number, so only digits ever reach it (Service::digits).
        $found = PBXManager_Record_Model::lookUpRelatedWithNumber($digits);
        if (!is_array($found) || empty($found['id'])) {
            return null;
        }
        return array('id' => $found['id'], 'name' => decode_html($found['name']), 'setype' => $found['setype']);
    }

    public function ownerOf($recordId) {
        $db = PearDatabase::getInstance();
        $result = $db->pquery(
            'SELECT u.first_name, u.last_name, u.user_name, u.phone_crm_extension, g.groupname'
            . ' FROM vtiger_crmentity c LEFT JOIN vtiger_users u ON u.id = c.smownerid'
            . ' LEFT JOIN vtiger_groups g ON g.groupid = c.smownerid'
            . ' WHERE c.crmid = ? AND c.deleted = 0',
            array($recordId));
        $row = $db->fetchByAssoc($result, -1, false);
        if (!$row) {
            return null;
        }
        if (!empty($row['groupname'])) {
            return array('name' => $row['groupname'], 'ext' => '');
        }
        if (empty($row['user_name'])) {
            return null;
        }
        return array(
            'name' => self::nameOf($row['first_name'], $row['last_name'], $row['user_name']),
            'ext' => trim((string) $row['phone_crm_extension']),
        );
    }

    public function callIdOfRecord($recordId) {
        $db = PearDatabase::getInstance();
        $result = $db->pquery(
            'SELECT p.sourceuuid FROM vtiger_pbxmanager p'
            . ' INNER JOIN vtiger_crmentity c ON c.crmid = p.pbxmanagerid'
            . ' WHERE p.pbxmanagerid = ? AND c.deleted = 0',
            array($recordId));
        $row = $db->fetchByAssoc($result, -1, false);
        return $row ? (string) $row['sourceuuid'] : null;
    }

    public function settings() {
        $server = PBXManager_Server_Model::getInstance();
        return array(
            'url' => (string) $server->get('webappurl'),
            'secret' => (string) $server->get('vtigersecretkey'),
            'browser_url' => self::setting('browser_url'),
        );
    }

    public function log($message) {
        error_log($message);
    }

    /** One of the module's own settings (vtiger_pinc_settings), '' when unset. */
    public static function setting($name) {
        $db = PearDatabase::getInstance();
        $result = $db->pquery('SELECT value FROM ' . self::SETTINGS_TABLE . ' WHERE name = ?', array($name));
        $row = $result ? $db->fetchByAssoc($result, -1, false) : null;
        return $row ? (string) $row['value'] : '';
    }

    public static function saveSetting($name, $value) {
        $db = PearDatabase::getInstance();
        $db->pquery('DELETE FROM ' . self::SETTINGS_TABLE . ' WHERE name = ?', array($name));
        if ($value !== '') {
            $db->pquery('INSERT INTO ' . self::SETTINGS_TABLE . ' (name, value) VALUES (?, ?)', array($name, $value));
        }
    }

    private static function nameOf($first, $last, $login) {
        $name = trim(decode_html(trim((string) $first . ' ' . (string) $last)));
        return $name !== '' ? $name : (string) $login;
    }
}
