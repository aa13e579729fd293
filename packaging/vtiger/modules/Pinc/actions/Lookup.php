<?php
/* Who is calling: vtiger's phone lookup, as far as the user may see. */

require_once 'modules/Pinc/lib/Action.php';

class Pinc_Lookup_Action extends Pinc_Action {
    public function process(Vtiger_Request $request) {
        $result = $this->service()->lookup((string) $request->get('number'));
        if (!empty($result['module'])) {
            $result['module_label'] = vtranslate('SINGLE_' . $result['module'], $result['module']);
        }
        $this->emit($result);
    }
}
