<?php
/* The card's Transfer button: pinc's /transfer, server to server, for the user's own call. */

require_once 'modules/Pinc/lib/Action.php';

class Pinc_Transfer_Action extends Pinc_Action {
    public function process(Vtiger_Request $request) {
        $this->emit($this->service(10.0)->transfer(
            (string) $request->get('call'),
            (string) $request->get('to'),
            (string) $request->get('mode')));
    }
}
