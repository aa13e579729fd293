<?php
/*
 * pinc's vtiger module (vtlib extension "Pinc"): a live call card with a Transfer button
 * on every page, the connector's status in Settings, recordings played through the CRM.
 *
 * It changes none of vtiger's files: on install (and when enabled) it registers its
 * header script and its Settings entry through vtlib's tables; when disabled or
 * uninstalled it removes them again.
 */

include_once 'vtlib/Vtiger/Link.php';

class Pinc {
    const MODULE = 'Pinc';
    const VERSION = '@VERSION@';
    const LINK_LABEL = 'pinc live call card';
    const SCRIPT = 'modules/Pinc/resources/pinc.js';
    // The Settings menu translates its entries with the page's own module's strings, which
    // know nothing of this module: a plain name reads right on every Settings page.
    const SETTINGS_NAME = 'pinc connector';
    const SETTINGS_URL = 'index.php?module=Pinc&parent=Settings&view=Status';

    /** vtlib calls this on module.postinstall, .enabled, .disabled, .preuninstall, .preupdate, .postupdate. */
    public function vtlib_handler($moduleName, $eventType) {
        if ($eventType === 'module.postinstall' || $eventType === 'module.enabled' || $eventType === 'module.postupdate') {
            self::register();
        } elseif ($eventType === 'module.disabled' || $eventType === 'module.preuninstall') {
            self::unregister();
        }
    }

    public static function register() {
        self::unregister();  // idempotent, and an update replaces the old script URL
        Vtiger_Link::addLink(0, 'HEADERSCRIPT', self::LINK_LABEL, self::SCRIPT . '?v=' . self::VERSION, '', 0, array(
            'path' => 'modules/Pinc/Pinc.php',
            'class' => 'Pinc',
            'method' => 'wantsScript',
        ));
        $db = PearDatabase::getInstance();
        $block = $db->pquery('SELECT blockid FROM vtiger_settings_blocks WHERE label = ?', array('LBL_INTEGRATION'));
        if ($db->num_rows($block) > 0) {
            $blockId = $db->query_result($block, 0, 'blockid');
            $sequence = $db->query_result($db->pquery(
                'SELECT COALESCE(MAX(sequence), 0) + 1 AS seq FROM vtiger_settings_field WHERE blockid = ?', array($blockId)), 0, 'seq');
            $db->pquery(
                'INSERT INTO vtiger_settings_field (fieldid, blockid, name, iconpath, description, linkto, sequence, active)'
                . ' VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                array($db->getUniqueID('vtiger_settings_field'), $blockId, self::SETTINGS_NAME, '',
                    'pinc connector: state, live call card', self::SETTINGS_URL, $sequence, 0));
        }
    }

    public static function unregister() {
        $db = PearDatabase::getInstance();
        $db->pquery('DELETE FROM vtiger_links WHERE tabid = 0 AND linktype = ? AND linklabel = ?',
            array('HEADERSCRIPT', self::LINK_LABEL));
        $db->pquery('DELETE FROM vtiger_settings_field WHERE name IN (?, ?)',
            array(self::SETTINGS_NAME, 'LBL_PINC_CONNECTOR'));  // and a development build's name
    }

    /**
     * vtiger asks this before it puts the header script on a page: only users who get a
     * card (an extension) or may see the connector's state (administrators) load it.
     */
    public static function wantsScript($linkData) {
        $user = $linkData->getUser();
        if (!$user) {
            return false;
        }
        $ext = isset($user->column_fields['phone_crm_extension']) ? trim((string) $user->column_fields['phone_crm_extension']) : '';
        return $ext !== '' || (isset($user->is_admin) && $user->is_admin === 'on');
    }
}
