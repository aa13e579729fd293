<?php
/* The card's start: the websocket URL with a fresh ticket for the user's extension. */

require_once 'modules/Pinc/lib/Action.php';

class Pinc_Start_Action extends Pinc_Action {
    public function process(Vtiger_Request $request) {
        $result = $this->service()->start();
        $result['strings'] = Vtiger_Language_Handler::export('Pinc', 'jsLanguageStrings');
        $this->emit($result);
    }
}
