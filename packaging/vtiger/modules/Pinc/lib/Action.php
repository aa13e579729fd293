<?php
/*
 * pinc's vtiger module: the base of its JSON actions (index.php?module=Pinc&action=...).
 * Every one is a POST with the CRM's CSRF token (vtiger's validateWriteAccess: method,
 * referer, csrf-magic token) from a signed-in user, and answers vtiger's JSON envelope.
 */

require_once __DIR__ . '/Service.php';
require_once __DIR__ . '/VtigerCrm.php';

abstract class Pinc_Action extends Vtiger_Action_Controller {
    public function requiresPermission(Vtiger_Request $request) {
        return array();
    }

    public function checkPermission(Vtiger_Request $request) {
        if (!vtlib_isModuleActive('Pinc')) {
            throw new AppException(vtranslate('LBL_PERMISSION_DENIED'));
        }
        return true;
    }

    public function validateRequest(Vtiger_Request $request) {
        return $request->validateWriteAccess();
    }

    protected function service($timeout = 5.0) {
        // The user's session is not needed past this point: release its lock, so a slow
        // answer from pinc never holds the user's other pages.
        $crm = new Pinc_VtigerCrm();
        session_write_close();
        return Pinc_Service::fromCrm($crm, time(), $timeout);
    }

    protected function emit(array $result) {
        $response = new Vtiger_Response();
        $response->setEmitType(Vtiger_Response::$EMIT_JSON);
        $response->setResult($result);
        $response->emit();
    }
}
