<?php
/*
 * pinc's vtiger module: what each of its actions does, apart from vtiger (the CRM is a
 * Pinc_Crm, pinc is a Pinc_Connector, the clock is a number). Answers are arrays: the
 * actions send them to the browser as JSON; failures carry a code that the language
 * files translate and, where pinc gave one, pinc's own reason.
 */

require_once __DIR__ . '/Crm.php';
require_once __DIR__ . '/Connector.php';

class Pinc_Service {
    private $crm;
    private $pinc;
    private $now;

    public function __construct(Pinc_Crm $crm, Pinc_Connector $pinc, $now) {
        $this->crm = $crm;
        $this->pinc = $pinc;
        $this->now = $now;
    }

    public static function fromCrm(Pinc_Crm $crm, $now, $timeout = 5.0) {
        $s = $crm->settings();
        $pinc = new Pinc_Connector($s['url'], $s['secret'], $s['browser_url'], new Pinc_Http($timeout));
        return new self($crm, $pinc, $now);
    }

    public static function failure($code, $detail = '') {
        return array('ok' => false, 'error' => $code, 'detail' => (string) $detail);
    }

    /** Why this user gets no card, or null when they get one. */
    private function cardRefusal() {
        if (!$this->pinc->configured()) {
            return 'not_configured';
        }
        if (!Pinc_Tickets::validSubject($this->crm->userExtension())) {
            return 'no_extension';
        }
        if (!$this->crm->isPermitted('PBXManager', 'ReceiveIncomingCalls')) {
            return 'not_permitted';
        }
        return null;
    }

    /** What the card needs when a page opens: the socket (with its ticket) and the colleagues. */
    public function start() {
        $refusal = $this->cardRefusal();
        if ($refusal !== null) {
            return self::failure($refusal);
        }
        $ext = $this->crm->userExtension();
        list($ws, $expires) = $this->pinc->wsUrl($ext, $this->now);
        return array(
            'ok' => true,
            'ext' => $ext,
            'name' => $this->crm->userName(),
            'ws' => $ws,
            'expires' => $expires,
            'colleagues' => $this->crm->colleagues(),
        );
    }

    /**
     * The CRM record of a caller, through vtiger's own phone lookup and permission check:
     * its name, type and link when the user may see it; "hidden" when it exists but the
     * user may not; create links (Contact, Lead) when there is none.
     */
    public function lookup($number) {
        $digits = self::digits($number);
        if ($digits === null) {
            return self::failure('bad_input', 'number');
        }
        $found = $this->crm->lookupNumber($digits);
        if (!$found || empty($found['id']) || empty($found['setype'])) {
            $create = array();
            foreach (array('Contacts', 'Leads') as $module) {
                if ($this->crm->isPermitted($module, 'CreateView')) {
                    $create[] = array(
                        'module' => $module,
                        'url' => 'index.php?module=' . $module . '&view=Edit&phone=' . rawurlencode('+' . $digits),
                    );
                }
            }
            return array('ok' => true, 'number' => $digits, 'found' => false, 'create' => $create);
        }
        $id = (string) $found['id'];
        $module = (string) $found['setype'];
        if (!$this->crm->isPermitted($module, 'DetailView', $id)) {
            return array('ok' => true, 'number' => $digits, 'found' => true, 'visible' => false);
        }
        return array(
            'ok' => true,
            'number' => $digits,
            'found' => true,
            'visible' => true,
            'id' => $id,
            'module' => $module,
            'name' => (string) $found['name'],
            'url' => 'index.php?module=' . rawurlencode($module) . '&view=Detail&record=' . rawurlencode($id),
            'owner' => $this->crm->ownerOf($id),
        );
    }

    /** The user's live calls, asked of pinc server-side: the card's fallback when its socket fails. */
    public function live() {
        $refusal = $this->cardRefusal();
        if ($refusal !== null) {
            return self::failure($refusal);
        }
        try {
            $calls = $this->pinc->liveCalls($this->crm->userExtension(), $this->now);
        } catch (Pinc_Unreachable $e) {
            return self::failure('unreachable');
        } catch (Pinc_Refused $e) {
            return self::failure(self::codeOf($e->status, $e->getMessage()), $e->getMessage());
        }
        return array('ok' => true, 'calls' => $calls);
    }

    /** Transfer one of the user's live calls to a colleague's extension or a number. */
    public function transfer($callId, $to, $mode) {
        $refusal = $this->cardRefusal();
        if ($refusal !== null) {
            return self::failure($refusal);
        }
        if (!Pinc_Tickets::validSubject($callId)) {
            return self::failure('bad_input', 'call');
        }
        $digits = self::digits($to);
        if ($digits === null) {
            return self::failure('bad_input', 'to');
        }
        if ($mode !== 'blind' && $mode !== 'attended') {
            return self::failure('bad_input', 'mode');
        }
        $ext = $this->crm->userExtension();
        try {
            $this->pinc->transfer($callId, $digits, $mode, $ext);
        } catch (Pinc_Unreachable $e) {
            $this->crm->log("pinc: transfer of call $callId by $ext failed: " . $e->getMessage());
            return self::failure('unreachable');
        } catch (Pinc_Refused $e) {
            $this->crm->log("pinc: transfer of call $callId by $ext to $digits refused ($e->status): " . $e->getMessage());
            return self::failure(self::codeOf($e->status, $e->getMessage()), $e->getMessage());
        }
        return array('ok' => true, 'call' => $callId, 'to' => $digits, 'mode' => $mode);
    }

    /**
     * The call id of a calls-module row whose recording the user may play; null when the row
     * does not exist, has no call id, or the user may not see it (the same answer for all:
     * the browser cannot tell "not yours" from "no such").
     */
    public function recordingCallId($recordId) {
        if (!is_string($recordId) || !preg_match('/^[1-9][0-9]{0,18}$/D', $recordId) || !$this->pinc->configured()) {
            return null;
        }
        if (!$this->crm->isPermitted('PBXManager', 'DetailView', $recordId)) {
            return null;
        }
        $callId = $this->crm->callIdOfRecord($recordId);
        return Pinc_Tickets::validSubject($callId) ? $callId : null;
    }

    public function connector() {
        return $this->pinc;
    }

    /**
     * The connector's state for the settings page, from pinc's /ping asked server-side:
     * ['reachable', 'url', 'ping' (pinc's answer), 'problems' => [[level, code, detail], ...]].
     */
    public function status() {
        $out = array('reachable' => false, 'url' => Pinc_Http::origin($this->pinc->url()), 'ping' => null, 'problems' => array());
        if (!$this->pinc->configured()) {
            $out['url'] = '';
            $out['problems'][] = array('error', 'not_configured', '');
            return $out;
        }
        try {
            list($status, $ping) = $this->pinc->ping();
        } catch (Pinc_Unreachable $e) {
            $out['problems'][] = array('error', 'unreachable', $e->getMessage());
            return $out;
        }
        $out['reachable'] = true;
        if ($status === 401 || $status === 403) {
            $out['problems'][] = array('error', 'refused_secret', '');
            return $out;
        }
        if ($status !== 200 || !is_array($ping)) {
            $out['problems'][] = array('error', 'bad_answer', "HTTP $status");
            return $out;
        }
        $out['ping'] = $ping;
        $out['problems'] = self::explain($ping);
        return $out;
    }

    /** What is wrong according to a /ping answer, in order of gravity (pure). */
    public static function explain(array $ping) {
        $problems = array();
        if (!isset($ping['ami'])) {
            // pinc answers only ok/degraded to those it does not trust with details
            $problems[] = array('warning', 'no_details', isset($ping['status']) ? (string) $ping['status'] : '');
            return $problems;
        }
        if (empty($ping['ami']['connected'])) {
            $problems[] = array('error', 'ami_down', '');
        }
        if (isset($ping['journal']) && empty($ping['journal']['ok'])) {
            $problems[] = array('error', 'journal', '');
        }
        $crm = isset($ping['crm']) && is_array($ping['crm']) ? $ping['crm'] : array();
        if (isset($crm['enabled']) && !$crm['enabled']) {
            $problems[] = array('warning', 'crm_disabled', '');
        } elseif (isset($crm['state']) && $crm['state'] === 'auth-failed') {
            $problems[] = array('error', 'crm_auth', '');
        } elseif (isset($crm['state']) && $crm['state'] !== 'ok' && $crm['state'] !== 'disabled') {
            $problems[] = array('error', 'crm_failing', (string) $crm['state']);
        }
        $backlog = isset($crm['backlog']) ? (int) $crm['backlog'] : 0;
        $age = isset($crm['oldest_age']) ? (float) $crm['oldest_age'] : 0.0;
        if ($backlog > 0 && $age >= 60) {
            $problems[] = array('warning', 'backlog', $backlog . ' / ' . (int) $age . ' s');
        }
        if (isset($ping['status']) && $ping['status'] !== 'ok' && !$problems) {
            $problems[] = array('warning', 'degraded', isset($ping['reason']) ? (string) $ping['reason'] : (string) $ping['status']);
        }
        return $problems;
    }

    /**
     * The card's error code for an HTTP status pinc refused with. A 403 is the secret
     * ("Authentication Failure") or pinc's dialling policy ("Error: to: ...").
     */
    public static function codeOf($status, $reason = '') {
        switch ((int) $status) {
            case 400: return 'refused_input';
            case 401: return 'refused_secret';
            case 403:
                return ($reason === '' || $reason === 'Authentication Failure') ? 'refused_secret' : 'refused_policy';
            case 404:
            case 409: return 'not_live';
            case 429: return 'rate_limited';
            case 502: return 'pbx_refused';
            case 503: return 'ami_down';
            case 504: return 'pbx_timeout';
            default: return 'error';
        }
    }

    /** A phone number or extension as digits (a leading + and separators dropped), or null. */
    public static function digits($value) {
        if (!is_string($value)) {
            return null;
        }
        $value = trim($value);
        if (!preg_match('/^\+?[0-9][0-9 ()\-]{0,29}$/D', $value)) {
            return null;
        }
        $digits = preg_replace('/[^0-9]/', '', $value);
        return strlen($digits) >= 2 && strlen($digits) <= 20 ? $digits : null;
    }
}
