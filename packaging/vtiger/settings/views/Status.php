<?php
/*
 * Settings -> Integration -> pinc connector: the connector's state, asked of pinc's /ping
 * server-side (with PBXManager's secret key) every time the page opens, and where browsers
 * reach pinc. Administrators only (Settings_Vtiger_Index_View checks it).
 */

require_once 'modules/Pinc/lib/Service.php';
require_once 'modules/Pinc/lib/VtigerCrm.php';
require_once 'modules/Pinc/Pinc.php';

class Settings_Pinc_Status_View extends Settings_Vtiger_Index_View {
    public function process(Vtiger_Request $request) {
        $qualified = $request->getModule(false);
        $crm = new Pinc_VtigerCrm();
        $settings = $crm->settings();
        $status = Pinc_Service::fromCrm($crm, time(), 3.0)->status();
        $ping = is_array($status['ping']) ? $status['ping'] : array();
        $viewer = $this->getViewer($request);
        $viewer->assign('QUALIFIED_MODULE', $qualified);
        $viewer->assign('PINC_STATUS', $status);
        $viewer->assign('PINC_AMI', isset($ping['ami']) && is_array($ping['ami']) ? $ping['ami'] : null);
        $viewer->assign('PINC_CRM', isset($ping['crm']) && is_array($ping['crm']) ? $ping['crm'] : null);
        $viewer->assign('PINC_VERSION', isset($ping['version']) ? (string) $ping['version'] : '');
        $viewer->assign('PINC_MODULE_VERSION', Pinc::VERSION);
        $viewer->assign('PINC_BROWSER_URL', Pinc_VtigerCrm::setting('browser_url'));
        $viewer->assign('PINC_APP_URL', Pinc_Http::origin($settings['url']));
        $viewer->assign('PINC_SAVED', $request->get('saved'));
        $viewer->view('Status.tpl', $qualified);
    }
}
