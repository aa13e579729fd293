<?php
/*
 * Runs one operation of pinc's vtiger module (packaging/vtiger/modules/Pinc/lib) outside
 * vtiger, for tests/module. The CRM is a fake built from a JSON spec; pinc is whatever
 * answers at spec.settings.url (the tests start a real pinc, or a recording server).
 *
 *   php harness.php SPEC.json   ->  {"result": ..., "asked": [...], "log": [...]} on stdout
 */

$root = getenv('PINC_MODULE_LIB');
require_once $root . '/Service.php';

class FakeCrm implements Pinc_Crm {
    public $spec;
    public $asked = array();
    public $logged = array();

    public function __construct(array $spec) {
        $this->spec = $spec;
    }

    private function get($key, $default) {
        return array_key_exists($key, $this->spec) ? $this->spec[$key] : $default;
    }

    public function userExtension() { return (string) $this->get('ext', ''); }
    public function userName() { return (string) $this->get('name', 'Test User'); }
    public function isAdmin() { return (bool) $this->get('admin', false); }

    public function isPermitted($module, $action, $recordId = '') {
        $key = $recordId === '' ? "$module:$action" : "$module:$action:$recordId";
        $this->asked[] = $key;
        $permitted = $this->get('permitted', array());
        return !empty($permitted[$key]);
    }

    public function colleagues() { return $this->get('colleagues', array()); }

    public function lookupNumber($digits) {
        $this->asked[] = "lookup:$digits";
        $found = $this->get('lookup', array());
        return isset($found[$digits]) ? $found[$digits] : null;
    }

    public function ownerOf($recordId) {
        $owners = $this->get('owners', array());
        return isset($owners[$recordId]) ? $owners[$recordId] : null;
    }

    public function callIdOfRecord($recordId) {
        $calls = $this->get('calls', array());
        return isset($calls[$recordId]) ? $calls[$recordId] : null;
    }

    public function settings() {
        return array_merge(array('url' => '', 'secret' => '', 'browser_url' => ''), $this->get('settings', array()));
    }

    public function log($message) { $this->logged[] = $message; }
}

$spec = json_decode(file_get_contents($argv[1]), true);
$crm = new FakeCrm($spec['crm']);
$service = Pinc_Service::fromCrm($crm, $spec['now'], isset($spec['timeout']) ? $spec['timeout'] : 5.0);
$args = isset($spec['args']) ? $spec['args'] : array();
switch ($spec['op']) {
    case 'recording':
        // What the Recording action does: the permission-checked call id, then the stream.
        $callId = $service->recordingCallId($args[0]);
        $result = array('call' => $callId);
        if ($callId !== null) {
            try {
                list($status, $headers, $stream) = $service->connector()->openRecording($callId, isset($args[1]) ? $args[1] : null);
                $body = stream_get_contents($stream);
                fclose($stream);
                $result += array('status' => $status, 'headers' => $headers, 'body_hex' => bin2hex($body));
            } catch (Pinc_Unreachable $e) {
                $result['unreachable'] = $e->getMessage();
            }
        }
        break;
    case 'mint':
        $result = Pinc_Tickets::mintWs($args[0], $args[1], $args[2], $args[3]);
        break;
    case 'signature':
        $result = Pinc_Tickets::signature($args[0], $args[1], $args[2], $args[3]);
        break;
    default:
        $result = call_user_func_array(array($service, $spec['op']), $args);
}
echo json_encode(array('result' => $result, 'asked' => $crm->asked, 'log' => $crm->logged)), "\n";
