<?php
/*
 * pinc's vtiger module: a small HTTP client for server-to-server requests to pinc.
 * PHP streams only (no cURL: Debian's php-cli has no php-curl by default), HTTP/1.0
 * so pinc never answers chunked, no redirects, one deadline for connect and reads.
 */

class Pinc_Unreachable extends Exception {
}

class Pinc_Http {
    const MAX_BODY = 4194304;  // a JSON answer from pinc is far smaller; a bigger one is refused

    private $timeout;
    private $userAgent;

    public function __construct($timeout = 5.0, $userAgent = 'pinc-vtiger') {
        $this->timeout = (float) $timeout;
        $this->userAgent = $userAgent;
    }

    /** A whole request: array(status, headers (lower-case names), body). */
    public function request($method, $url, array $headers = array(), $body = null) {
        list($status, $answerHeaders, $stream) = $this->open($method, $url, $headers, $body);
        $data = stream_get_contents($stream, self::MAX_BODY + 1);
        $meta = stream_get_meta_data($stream);
        fclose($stream);
        if ($data === false || !empty($meta['timed_out'])) {
            throw new Pinc_Unreachable('pinc did not finish its answer in time');
        }
        if (strlen($data) > self::MAX_BODY) {
            throw new Pinc_Unreachable('pinc answered more than ' . self::MAX_BODY . ' bytes');
        }
        return array($status, $answerHeaders, $data);
    }

    /**
     * Send a request and return array(status, headers, stream) once the answer's head is in;
     * the caller reads the body from the stream (recordings are streamed, never buffered)
     * and closes it.
     */
    public function open($method, $url, array $headers = array(), $body = null) {
        if (!preg_match('#^https?://[^/?\#]+#i', $url)) {
            throw new InvalidArgumentException('not an http(s) URL');
        }
        $lines = array('Connection: close');
        foreach ($headers as $name => $value) {
            if (preg_match('/[\r\n]/', $name . $value)) {
                throw new InvalidArgumentException('a header may not hold a line break');
            }
            $lines[] = "$name: $value";
        }
        $http = array(
            'method' => $method,
            'timeout' => $this->timeout,
            'ignore_errors' => true,     // read 4xx/5xx answers too: they carry pinc's reason
            'follow_location' => 0,
            'max_redirects' => 1,
            'protocol_version' => 1.0,
            'user_agent' => $this->userAgent,
        );
        if ($body !== null) {
            $lines[] = 'Content-Length: ' . strlen($body);
            $http['content'] = $body;
        }
        $http['header'] = implode("\r\n", $lines);
        $context = stream_context_create(array('http' => $http));
        $stream = @fopen($url, 'rb', false, $context);
        if ($stream === false) {
            $error = error_get_last();
            $why = $error ? preg_replace('/\?[^\s:]*/', '?…', $error['message']) : 'no answer';
            throw new Pinc_Unreachable("pinc does not answer at " . self::origin($url) . ": $why");
        }
        stream_set_timeout($stream, (int) ceil($this->timeout));
        $meta = stream_get_meta_data($stream);
        list($status, $answerHeaders) = self::parseHead(isset($meta['wrapper_data']) ? $meta['wrapper_data'] : array());
        if ($status === 0) {
            fclose($stream);
            throw new Pinc_Unreachable('pinc sent no HTTP status line');
        }
        return array($status, $answerHeaders, $stream);
    }

    /** The status and headers of the (last) answer head in PHP's wrapper_data lines. */
    public static function parseHead(array $lines) {
        $status = 0;
        $headers = array();
        foreach ($lines as $line) {
            if (preg_match('#^HTTP/\d(?:\.\d)?\s+(\d{3})#', $line, $m)) {
                $status = (int) $m[1];
                $headers = array();
                continue;
            }
            $colon = strpos($line, ':');
            if ($colon !== false) {
                $headers[strtolower(trim(substr($line, 0, $colon)))] = trim(substr($line, $colon + 1));
            }
        }
        return array($status, $headers);
    }

    /** scheme://host[:port] of a URL: what a log line or an error may show of it. */
    public static function origin($url) {
        $parts = parse_url($url);
        if (!is_array($parts) || empty($parts['host'])) {
            return '(bad URL)';
        }
        $origin = (isset($parts['scheme']) ? $parts['scheme'] : 'http') . '://' . $parts['host'];
        return isset($parts['port']) ? $origin . ':' . $parts['port'] : $origin;
    }
}
