<?php
/*
 * pinc's vtiger module: signed, scoped tickets, as pinc/web/tickets.py checks them.
 * Pure: no I/O, no clock (the caller passes "now").
 *
 *   key(purpose) = HMAC-SHA256(master, "pinc/" + purpose)
 *   message      = "v1." + purpose + "." + subject + "." + expires
 *   signature    = base64url(HMAC-SHA256(key(purpose), message)[:16]), no padding
 *   ticket       = message + "." + signature
 *
 * The master is vtiger's PBXManager secret key, which is pinc's crm.secret: the
 * secret never leaves the CRM's server, only tickets do.
 */

class Pinc_Tickets {
    const VERSION = 'v1';
    const RECORDING = 'recording';  // subject: a call id
    const WS = 'ws';                // subject: an employee extension
    const WS_MAX_TTL = 3600;        // pinc refuses a ws ticket that claims to live longer

    public static function deriveKey($master, $purpose) {
        if ($purpose !== self::RECORDING && $purpose !== self::WS) {
            throw new InvalidArgumentException("unknown ticket purpose");
        }
        return hash_hmac('sha256', 'pinc/' . $purpose, $master, true);
    }

    public static function validSubject($subject) {
        return is_string($subject) && preg_match('/^[A-Za-z0-9_-]{1,64}$/D', $subject) === 1;
    }

    public static function signature($master, $purpose, $subject, $expires = 0) {
        if (!is_string($master) || $master === '') {
            throw new InvalidArgumentException('no master secret to sign with');
        }
        if (!self::validSubject($subject)) {
            throw new InvalidArgumentException('a ticket subject is 1-64 characters of A-Z a-z 0-9 _ -');
        }
        $expires = (int) $expires;
        if ($expires < 0) {
            throw new InvalidArgumentException('expires must be 0 (never) or a Unix time');
        }
        $message = self::VERSION . ".$purpose.$subject.$expires";
        $mac = hash_hmac('sha256', $message, self::deriveKey($master, $purpose), true);
        return rtrim(strtr(base64_encode(substr($mac, 0, 16)), '+/', '-_'), '=');
    }

    /** A ws ticket for one extension that expires $ttl seconds after $now. */
    public static function mintWs($master, $ext, $now, $ttl) {
        $ttl = (int) $ttl;
        if ($ttl <= 0 || $ttl > self::WS_MAX_TTL) {
            throw new InvalidArgumentException("a ws ticket may not live $ttl s");
        }
        $expires = (int) floor($now) + $ttl;
        return self::VERSION . '.' . self::WS . ".$ext.$expires." . self::signature($master, self::WS, $ext, $expires);
    }

    /** The query of pinc's permanent recording link of one call: id=<call id>&sig=<signature>. */
    public static function recordingQuery($master, $callId) {
        return 'id=' . rawurlencode($callId) . '&sig=' . self::signature($master, self::RECORDING, $callId, 0);
    }
}
