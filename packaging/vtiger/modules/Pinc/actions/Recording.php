<?php
/*
 * A call's recording, for the <audio> player on the calls module's pages: the user must be
 * allowed to see that calls-module row; the module then streams the recording from pinc
 * server-side, through the signed link it computes itself, passing Range on (seeking).
 * Unknown, not-yours and no-recording all answer 404.
 */

require_once 'modules/Pinc/lib/Action.php';

class Pinc_Recording_Action extends Pinc_Action {
    const HEADERS = array('content-type', 'content-length', 'content-range', 'accept-ranges', 'last-modified', 'etag');

    public function validateRequest(Vtiger_Request $request) {
        return $request->validateReadAccess();  // a GET from <audio>: no CSRF token, nothing changes
    }

    public function process(Vtiger_Request $request) {
        $service = $this->service(10.0);
        $callId = $service->recordingCallId((string) $request->get('record'));
        if ($callId === null) {
            return $this->fail(404, 'Not Found');
        }
        $range = isset($_SERVER['HTTP_RANGE']) ? $_SERVER['HTTP_RANGE'] : null;
        try {
            list($status, $headers, $stream) = $service->connector()->openRecording($callId, $range);
        } catch (Pinc_Unreachable $e) {
            error_log('pinc: recording of call ' . $callId . ': ' . $e->getMessage());
            return $this->fail(502, 'connector unreachable');
        }
        if ($status !== 200 && $status !== 206 && $status !== 416) {
            fclose($stream);
            error_log("pinc: recording of call $callId: pinc answered HTTP $status");
            return $this->fail($status === 404 ? 404 : 502, $status === 404 ? 'Not Found' : 'connector error');
        }
        while (ob_get_level() > 0) {
            ob_end_clean();  // csrf-magic's buffer would hold the whole file in memory
        }
        http_response_code($status);
        foreach (self::HEADERS as $name) {
            if (isset($headers[$name])) {
                header(ucwords($name, '-') . ': ' . $headers[$name]);
            }
        }
        header('Content-Disposition: inline');
        header('Cache-Control: private, no-store');
        header('X-Content-Type-Options: nosniff');
        while (!feof($stream) && !connection_aborted()) {
            $chunk = fread($stream, 65536);
            if ($chunk === false || $chunk === '') {
                break;  // the end, or pinc stopped sending for longer than the deadline
            }
            echo $chunk;
            flush();
        }
        fclose($stream);
    }

    private function fail($status, $text) {
        http_response_code($status);
        header('Content-Type: text/plain; charset=utf-8');
        echo $text, "\n";
    }
}
