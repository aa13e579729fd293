<?php
/* Save the module's one setting: the URL browsers reach pinc at (empty: PBXManager's app URL). */

require_once 'modules/Pinc/lib/Connector.php';
require_once 'modules/Pinc/lib/VtigerCrm.php';

class Settings_Pinc_Save_Action extends Settings_Vtiger_Index_Action {
    public function validateRequest(Vtiger_Request $request) {
        return $request->validateWriteAccess();
    }

    public function process(Vtiger_Request $request) {
        $url = trim((string) $request->getRaw('browser_url'));
        $clean = Pinc_Connector::normaliseUrl($url);
        $outcome = 'ok';
        if ($url !== '' && $clean === '') {
            $outcome = 'bad_url';
        } else {
            Pinc_VtigerCrm::saveSetting('browser_url', $clean);
        }
        header('Location: index.php?module=Pinc&parent=Settings&view=Status&saved=' . $outcome);
    }
}
