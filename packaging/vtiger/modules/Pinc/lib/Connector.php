<?php
/*
 * pinc's vtiger module: the requests the CRM's server makes to pinc.
 *
 * The CRM reaches pinc at PBXManager's "app URL" (webappurl) and proves itself with
 * PBXManager's secret key (= pinc's crm.secret), sent in a header or a POST body,
 * never in a URL. Browsers only ever get tickets (Tickets.php), and reach pinc at the
 * browser URL (the same as the app URL unless the administrator set another one).
 */

require_once __DIR__ . '/Http.php';
require_once __DIR__ . '/Tickets.php';

/** pinc answered, but refused: $status is its HTTP status, the message its reason. */
class Pinc_Refused extends Exception {
    public $status;

    public function __construct($status, $message) {
        parent::__construct($message);
        $this->status = (int) $status;
    }
}

class Pinc_Connector {
    const WS_TTL = 300;    // a browser's ticket: long enough to connect, short if it leaks
    const LIVE_TTL = 60;   // the ticket of one server-side poll

    private $url;
    private $secret;
    private $browserUrl;
    private $http;

    public function __construct($url, $secret, $browserUrl, Pinc_Http $http) {
        $this->url = self::normaliseUrl($url);
        $this->secret = is_string($secret) ? $secret : '';
        $browser = self::normaliseUrl($browserUrl);
        $this->browserUrl = $browser !== '' ? $browser : $this->url;
        $this->http = $http;
    }

    /** An http(s) base URL without a trailing slash, query or fragment; '' when unusable. */
    public static function normaliseUrl($url) {
        if (!is_string($url)) {
            return '';
        }
        $url = rtrim(trim($url), '/');
        if (!preg_match('#^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/%]*)?$#D', $url)) {
            return '';
        }
        return $url;
    }

    public function configured() {
        return $this->url !== '' && $this->secret !== '';
    }

    public function url() {
        return $this->url;
    }

    /** The websocket URL a browser opens for $ext's live calls, with a fresh ticket. */
    public function wsUrl($ext, $now) {
        $ticket = Pinc_Tickets::mintWs($this->secret, $ext, $now, self::WS_TTL);
        $base = preg_replace('#^http#i', 'ws', $this->browserUrl);
        return array($base . '/ws?ticket=' . rawurlencode($ticket), (int) floor($now) + self::WS_TTL);
    }

    /** pinc's /ping with the secret: array(HTTP status, decoded JSON or null). */
    public function ping() {
        list($status, , $body) = $this->http->request('GET', $this->url . '/ping', array(
            'X-Pinc-Secret' => $this->secret,
            'Accept' => 'application/json',
        ));
        $data = json_decode($body, true);
        return array($status, is_array($data) ? $data : null);
    }

    /** $ext's live calls, as pinc's GET /calls/live answers them (the polling fallback). */
    public function liveCalls($ext, $now) {
        $ticket = Pinc_Tickets::mintWs($this->secret, $ext, $now, self::LIVE_TTL);
        list($status, , $body) = $this->http->request(
            'GET', $this->url . '/calls/live?ticket=' . rawurlencode($ticket), array('Accept' => 'application/json'));
        $data = json_decode($body, true);
        if ($status !== 200 || !is_array($data) || !isset($data['calls']) || !is_array($data['calls'])) {
            throw new Pinc_Refused($status, self::reason($body, $data));
        }
        return $data['calls'];
    }

    /**
     * POST /transfer, server to server, as the original connector did. $ext is the user's
     * extension: pinc checks that this employee is on the call. Returns true, or throws
     * Pinc_Refused with pinc's reason.
     */
    public function transfer($callId, $to, $mode, $ext) {
        $form = http_build_query(array(
            'secret' => $this->secret,
            'call' => $callId,
            'to' => $to,
            'mode' => $mode,
            'ext' => $ext,
        ), '', '&');
        list($status, , $body) = $this->http->request('POST', $this->url . '/transfer', array(
            'Content-Type' => 'application/x-www-form-urlencoded',
        ), $form);
        if ($status === 200 && trim($body) === 'Success') {
            return true;
        }
        throw new Pinc_Refused($status, self::reason($body, null));
    }

    /** The signed link of one call's recording (no secret in it; it opens that recording only). */
    public function recordingUrl($callId) {
        return $this->url . '/recording?' . Pinc_Tickets::recordingQuery($this->secret, $callId);
    }

    /** Open the recording stream, passing the browser's Range on (seeking). */
    public function openRecording($callId, $range) {
        $headers = array();
        if (is_string($range) && preg_match('/^bytes=[0-9,\- ]{1,100}$/D', $range)) {
            $headers['Range'] = $range;
        }
        return $this->http->open('GET', $this->recordingUrl($callId), $headers);
    }

    /** pinc's reason from an error answer: its JSON error message or its plain text. */
    public static function reason($body, $data) {
        if (is_array($data) && isset($data['error']['message']) && is_string($data['error']['message'])) {
            return $data['error']['message'];
        }
        $text = trim((string) $body);
        if (strpos($text, 'Error:') === 0) {
            $text = trim(substr($text, 6));
        }
        if ($text === '' || $text === 'Error' || strlen($text) > 300 || $text[0] === '<') {
            return '';
        }
        return $text;
    }
}
