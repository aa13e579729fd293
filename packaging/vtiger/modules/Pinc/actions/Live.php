<?php
/* The card's fallback when its websocket cannot connect: the user's live calls from pinc. */

require_once 'modules/Pinc/lib/Action.php';

class Pinc_Live_Action extends Pinc_Action {
    public function process(Vtiger_Request $request) {
        $this->emit($this->service(3.0)->live());
    }
}
