<?php
/*
 * pinc's vtiger module: what the module asks of the CRM it runs in. VtigerCrm.php
 * answers from vtiger itself; the unit tests (tests/module) answer from a fake.
 */

interface Pinc_Crm {
    /** The signed-in user's CRM Phone Extension (phone_crm_extension), '' when none. */
    public function userExtension();

    /** The signed-in user's display name. */
    public function userName();

    /** Whether the user is a CRM administrator. */
    public function isAdmin();

    /** vtiger's own permission check: Users_Privileges_Model::isPermitted. */
    public function isPermitted($module, $action, $recordId = '');

    /** Active users with an extension other than the signed-in user: [['name' =>, 'ext' =>], ...]. */
    public function colleagues();

    /** vtiger's own phone lookup of a number (digits): ['id', 'name', 'setype'], or null. */
    public function lookupNumber($digits);

    /** The owner of a record: ['name' =>, 'ext' =>], or null. */
    public function ownerOf($recordId);

    /** The call id (PBXManager's sourceuuid = pinc's call id) of a calls-module row, or null. */
    public function callIdOfRecord($recordId);

    /** ['url' => PBXManager app URL, 'secret' => its secret key, 'browser_url' => '' or pinc's URL for browsers]. */
    public function settings();

    /** One line in the CRM's log (never a secret or a ticket). */
    public function log($message);
}
