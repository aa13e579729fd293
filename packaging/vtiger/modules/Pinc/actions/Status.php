<?php
/* The connector's state for the PBXManager settings page (administrators only). */

require_once 'modules/Pinc/lib/Action.php';
require_once 'modules/Pinc/Pinc.php';

class Pinc_Status_Action extends Pinc_Action {
    public function checkPermission(Vtiger_Request $request) {
        parent::checkPermission($request);
        if (!Users_Record_Model::getCurrentUserModel()->isAdminUser()) {
            throw new AppException(vtranslate('LBL_PERMISSION_DENIED'));
        }
        return true;
    }

    public function process(Vtiger_Request $request) {
        $status = $this->service(3.0)->status();
        foreach ($status['problems'] as $i => $problem) {
            $status['problems'][$i][] = vtranslate('PINC_' . $problem[1], 'Settings:Pinc');
        }
        $status['page'] = Pinc::SETTINGS_URL;
        $this->emit($status);
    }
}
