<?php
/*
 * index.php?module=Pinc&view=Card: the signed-in user's live call card alone, in a page of
 * its own (a small window on a second screen, kept open all day). The same card as on
 * every CRM page (resources/pinc.js), without the CRM's menus around it.
 */

class Pinc_Card_View extends Vtiger_View_Controller {
    public function requiresPermission(Vtiger_Request $request) {
        return array();
    }

    public function checkPermission(Vtiger_Request $request) {
        if (!vtlib_isModuleActive('Pinc')) {
            throw new AppException(vtranslate('LBL_PERMISSION_DENIED'));
        }
        return true;
    }

    public function preProcess(Vtiger_Request $request, $display = true) {
    }

    public function postProcess(Vtiger_Request $request) {
    }

    public function process(Vtiger_Request $request) {
        require_once 'modules/Pinc/Pinc.php';
        $user = Users_Record_Model::getCurrentUserModel();
        $viewer = $this->getViewer($request);
        $viewer->assign('PINC_VERSION', Pinc::VERSION);
        $viewer->assign('PINC_USER', trim($user->get('first_name') . ' ' . $user->get('last_name')));
        $viewer->assign('PINC_EXT', (string) $user->get('phone_crm_extension'));
        $viewer->view('Card.tpl', 'Pinc');
    }
}
