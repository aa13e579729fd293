/*
 * pinc's vtiger module, in the browser: the live call card on every page, the connector's
 * state on the PBXManager settings page, recordings played through the module on the calls
 * module's pages. Plain JavaScript on the CRM's own jQuery; no build step.
 *
 * The card listens to pinc's /ws with a short-lived ticket that the module mints on the
 * server for the user's extension (action Start). When the socket cannot connect it asks
 * the module every few seconds instead (action Live). Transfers go to the module (action
 * Transfer, with the CRM's CSRF token), which asks pinc server to server. Nothing secret
 * ever reaches this page.
 */
(function (window, document) {
    'use strict';

    /* ---- What a call means for one employee (pure: tested in Chromium without a CRM) ---- */

    var LIVE = {ringing: true, answered: true};

    function lastLeg(call, ext) {
        var legs = call.legs || [], i;
        for (i = legs.length - 1; i >= 0; i--) {
            if (legs[i].ext === ext) {
                return legs[i];
            }
        }
        return null;
    }

    /*
     * A phone that rang together with the one that answered (a queue, a ring group) stops
     * ringing then, though pinc closes its leg only when the call ends. A phone that starts
     * ringing after the answer (a transfer target) really rings.
     */
    function overtaken(call, leg) {
        return call.status === 'answered' && !!call.answered_at && !!leg.rang_at &&
            leg.rang_at <= call.answered_at;
    }

    /* The other party as this employee sees it: the customer, or the colleague. */
    function peerOf(call, ext) {
        if (call.direction === 'inbound') {
            return call.from;
        }
        if (call.direction === 'outbound') {
            return call.to;
        }
        return call.from === ext ? call.to : call.from;
    }

    /*
     * The card of call `call` for extension `ext`: {id, state, peer, direction, canTransfer},
     * or null when this employee has no part in it (any more). States: ringing (their phone
     * rings), calling (they call out, or click-to-call rings them first), talking, hold.
     */
    function viewOf(call, ext) {
        if (!call || !LIVE[call.status] || !ext) {
            return null;
        }
        var leg = lastLeg(call, ext);
        var left = !!(leg && leg.ended_at);
        var caller = call.from === ext && call.direction !== 'inbound';
        var state = null;
        if (call.answered_by === ext && call.status === 'answered' && !left) {
            state = call.held ? 'hold' : 'talking';
        } else if (leg && !leg.result && !leg.answered_at && !leg.ended_at && !overtaken(call, leg)) {
            state = caller ? 'calling' : 'ringing';
        } else if (caller && !left) {
            state = call.status === 'answered' ? 'talking' : 'calling';
        }
        if (!state) {
            return null;
        }
        return {
            id: call.id,
            state: state,
            peer: peerOf(call, ext) || '',
            direction: call.direction,
            canTransfer: state === 'talking' || state === 'hold'
        };
    }

    function showNumber(digits) {
        digits = String(digits || '');
        return digits.length >= 11 ? '+' + digits : digits;
    }

    window.PincCardLogic = {viewOf: viewOf, peerOf: peerOf, showNumber: showNumber};

    var $ = window.jQuery;
    if (!$ || window.PincCard) {
        return;
    }

    /* ---- Talking to the module ---- */

    var ACTION = 'index.php?module=Pinc&action=';
    var POLL_MS = 2000;
    var KEEPALIVE_MS = 25000;
    var MAX_BACKOFF_MS = 30000;

    function post(action, data) {
        data = $.extend({}, data || {});
        if (window.csrfMagicName && window.csrfMagicToken) {
            data[window.csrfMagicName] = window.csrfMagicToken;
        }
        return $.ajax({url: ACTION + action, type: 'POST', data: data, dataType: 'json', timeout: 15000})
            .then(function (answer) {
                if (answer && answer.success) {
                    return answer.result;
                }
                return $.Deferred().reject(answer && answer.error ? answer.error.message : 'error').promise();
            });
    }

    function scriptBase() {
        var src = $('script[src*="modules/Pinc/resources/pinc.js"]').attr('src') || '';
        return src.replace(/pinc\.js.*$/, '');
    }

    /* ---- The card ---- */

    var card = window.PincCard = {
        ext: null,
        strings: {},
        colleagues: [],
        calls: {},       // call id -> the call as pinc last described it
        shown: {},       // call id -> its card element
        dismissed: {},   // call id -> the state the user closed the card in
        lookups: {},     // number -> promise of the module's lookup
        socket: null,
        connected: false,
        polling: null,
        failures: 0,
        drawn: [],       // {call, peer, state, at, named_at}: when each card appeared and when
                         // the CRM's lookup filled it in (ms since the epoch; bench/popup.py)
        mode: 'starting'
    };

    function t(key) {
        return card.strings[key] || key;
    }

    function box() {
        var $box = $('#pinc-cards');
        if (!$box.length) {
            $box = $('<div id="pinc-cards" aria-live="polite"></div>').appendTo(document.body);
        }
        return $box;
    }

    function setOffline(offline) {
        var $bar = box().children('.pinc-offline');
        if (offline && !$bar.length) {
            $('<div class="pinc-offline" role="status"></div>').text(t('err_unreachable')).prependTo(box());
        } else if (!offline) {
            $bar.remove();
        }
    }

    function lookup(number) {
        if (!card.lookups[number]) {
            card.lookups[number] = post('Lookup', {number: number});
            card.lookups[number].fail(function () {
                delete card.lookups[number];
            });
        }
        return card.lookups[number];
    }

    function colleagueName(ext) {
        for (var i = 0; i < card.colleagues.length; i++) {
            if (card.colleagues[i].ext === ext) {
                return card.colleagues[i].name;
            }
        }
        return null;
    }

    function fillWho($card, view, mark) {
        var $who = $card.find('.pinc-who');
        var $owner = $card.find('.pinc-owner');
        if (view.direction === 'internal') {
            $who.text(colleagueName(view.peer) || showNumber(view.peer));
            mark.named_at = Date.now();
            return;
        }
        $who.text(t('looking_up'));
        lookup(view.peer).done(function (r) {
            mark.named_at = Date.now();
            $who.empty();
            if (!r.ok) {
                $who.text('');
            } else if (r.found && r.visible) {
                $('<a class="pinc-name" target="_blank"></a>').attr('href', r.url).text(r.name).appendTo($who);
                $('<span class="pinc-type"></span>').text(' · ' + (r.module_label || r.module)).appendTo($who);
                if (r.owner) {
                    $owner.text(t('responsible') + ': ' + r.owner.name + (r.owner.ext ? ' (' + r.owner.ext + ')' : ''));
                }
            } else if (r.found) {
                $who.text(t('hidden'));
            } else {
                $who.text(t('unknown'));
                $.each(r.create || [], function (_, c) {
                    $('<a class="pinc-create" target="_blank"></a>').attr('href', c.url)
                        .attr('data-module', c.module).text(t('create_' + c.module)).appendTo($who);
                });
            }
        }).fail(function () {
            $who.text('');
        });
    }

    function transferForm(callId) {
        var $form = $('<form class="pinc-transfer"></form>');
        var $select = $('<select name="colleague" class="pinc-colleague"></select>')
            .append($('<option value=""></option>').text(t('colleague')));
        $.each(card.colleagues, function (_, c) {
            $('<option></option>').attr('value', c.ext).text(c.name + ' (' + c.ext + ')').appendTo($select);
        });
        var name = 'pinc-mode-' + callId;
        $form.append($select)
            .append($('<input type="text" name="number" class="pinc-number-input" size="12" autocomplete="off">')
                .attr('placeholder', t('number')))
            .append($('<label class="pinc-mode"></label>')
                .append($('<input type="radio" value="blind" checked>').attr('name', name)).append(' ' + t('blind')))
            .append($('<label class="pinc-mode"></label>')
                .append($('<input type="radio" value="attended">').attr('name', name)).append(' ' + t('attended')))
            .append($('<button type="submit" class="btn btn-primary btn-sm pinc-do-transfer"></button>').text(t('transfer')));
        $form.on('submit', function (event) {
            event.preventDefault();
            var to = $.trim($form.find('.pinc-number-input').val()) || $select.val();
            var mode = $form.find('input[name="' + name + '"]:checked').val() || 'blind';
            var $card = $form.closest('.pinc-card');
            var $note = $card.find('.pinc-note');
            if (!to) {
                return;
            }
            $form.find('button').prop('disabled', true);
            $note.removeClass('pinc-error').text(t('transferring'));
            post('Transfer', {call: callId, to: to, mode: mode}).done(function (r) {
                if (r.ok) {
                    $note.text(t('transferred'));
                } else {
                    $note.addClass('pinc-error').text(t('err_' + r.error) + (r.detail ? ' (' + r.detail + ')' : ''));
                }
            }).fail(function () {
                $note.addClass('pinc-error').text(t('err_error'));
            }).always(function () {
                $form.find('button').prop('disabled', false);
            });
        });
        return $form;
    }

    function draw(view) {
        var $card = card.shown[view.id];
        if (!$card) {
            $card = $('<div class="pinc-card" role="dialog"></div>').attr('data-call-id', view.id)
                .append($('<div class="pinc-head"></div>')
                    .append('<span class="pinc-state"></span> ')
                    .append('<span class="pinc-peer"></span>')
                    .append($('<button type="button" class="pinc-close">&times;</button>').attr('title', t('close'))))
                .append('<div class="pinc-who"></div>')
                .append('<div class="pinc-owner"></div>')
                .append('<div class="pinc-actions"></div>')
                .append('<div class="pinc-note"></div>');
            $card.find('.pinc-close').on('click', function () {
                card.dismissed[view.id] = $card.attr('data-state');
                forget(view.id);
            });
            card.shown[view.id] = $card;
            $card.find('.pinc-peer').text(showNumber(view.peer));
            box().append($card);
            var at = Date.now();
            var mark = {call: view.id, peer: view.peer, state: view.state, at: at, named_at: null};
            $card.attr('data-drawn-at', at);
            card.drawn.push(mark);
            if (card.drawn.length > 5000) {
                card.drawn.splice(0, 1000);
            }
            fillWho($card, view, mark);
        }
        if ($card.attr('data-state') !== view.state) {
            $card.attr('data-state', view.state).attr('data-state-at', Date.now());
            $card.find('.pinc-state').text(t(view.state));
            var $actions = $card.find('.pinc-actions');
            if (view.canTransfer && !$actions.children('.pinc-transfer').length) {
                $actions.append(transferForm(view.id));
            } else if (!view.canTransfer) {
                $actions.empty();
            }
        }
    }

    function forget(callId) {
        if (card.shown[callId]) {
            card.shown[callId].remove();
            delete card.shown[callId];
        }
    }

    function render(call) {
        var view = viewOf(call, card.ext);
        if (!view) {
            forget(call.id);
            delete card.calls[call.id];
            delete card.dismissed[call.id];
            return;
        }
        if (card.dismissed[call.id] === view.state) {
            return;
        }
        delete card.dismissed[call.id];
        draw(view);
    }

    function snapshot(calls) {
        var seen = {};
        $.each(calls || [], function (_, call) {
            seen[call.id] = true;
            card.calls[call.id] = call;
            render(call);
        });
        $.each($.extend({}, card.shown), function (id) {
            if (!seen[id]) {
                forget(id);
                delete card.calls[id];
            }
        });
    }

    function onMessage(message) {
        if (!message || !message.type) {
            return;
        }
        if (message.type === 'snapshot') {
            snapshot(message.calls);
        } else if (message.type.indexOf('call.') === 0 && message.call) {
            card.calls[message.call.id] = message.call;
            render(message.call);
        }
    }

    /* ---- The socket, and the poll when it cannot connect ---- */

    function startPolling() {
        if (card.polling) {
            return;
        }
        card.mode = 'polling';
        var tick = function () {
            post('Live').done(function (r) {
                if (r.ok) {
                    setOffline(false);
                    snapshot(r.calls);
                } else if (r.error === 'unreachable') {
                    setOffline(true);
                }
            });
        };
        tick();
        card.polling = window.setInterval(tick, POLL_MS);
    }

    function stopPolling() {
        if (card.polling) {
            window.clearInterval(card.polling);
            card.polling = null;
        }
    }

    function reconnectLater() {
        var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, Math.min(card.failures, 5)));
        window.setTimeout(start, delay);
    }

    function connect(url) {
        var socket, opened = false, keepalive = null;
        try {
            socket = new window.WebSocket(url);
        } catch (e) {
            card.failures++;
            startPolling();
            reconnectLater();
            return;
        }
        card.socket = socket;
        socket.onopen = function () {
            opened = true;
            card.connected = true;
            card.failures = 0;
            card.mode = 'socket';
            stopPolling();
            setOffline(false);
            keepalive = window.setInterval(function () {
                if (socket.readyState === 1) {
                    socket.send('{"type":"ping"}');
                }
            }, KEEPALIVE_MS);
        };
        socket.onmessage = function (event) {
            var message;
            try {
                message = JSON.parse(event.data);
            } catch (e) {
                return;
            }
            onMessage(message);
        };
        socket.onclose = function () {
            window.clearInterval(keepalive);
            card.connected = false;
            card.socket = null;
            card.failures = opened ? 1 : card.failures + 1;
            if (!opened || card.failures > 1) {
                startPolling();  // the socket does not get through: ask the module meanwhile
            }
            reconnectLater();
        };
    }

    function start() {
        post('Start').done(function (r) {
            if (!r.ok) {
                card.mode = 'off:' + r.error;
                if ($('body').hasClass('pinc-window')) {  // the card window says why it stays empty
                    card.strings = $.isPlainObject(r.strings) ? r.strings : {};
                    $('<div class="pinc-offline" role="status"></div>').text(t('err_' + r.error))
                        .prependTo(box());
                }
                return;  // no extension, not permitted or not configured: no card
            }
            card.ext = r.ext;
            card.strings = $.isPlainObject(r.strings) ? r.strings : {};
            card.colleagues = r.colleagues || [];
            connect(r.ws);
        }).fail(function () {
            card.failures++;
            reconnectLater();
        });
    }

    /* ---- The connector's state on the PBXManager settings page (administrators) ---- */

    function showStatus() {
        var $anchor = $('#AsteriskServerDetails');
        if (!$anchor.length || $('#pinc-status').length) {
            return;
        }
        var $panel = $('<div id="pinc-status" class="pinc-status"></div>').insertBefore($anchor);
        post('Status').done(function (r) {
            var problems = r.problems || [];
            if (!problems.length) {
                $('<div class="alert alert-success" data-pinc-state="ok"></div>').text('pinc: OK').appendTo($panel);
            }
            $.each(problems, function (_, p) {
                $('<div class="alert"></div>').addClass(p[0] === 'error' ? 'alert-danger' : 'alert-warning')
                    .attr('data-pinc-problem', p[1]).text(p[3] || p[1]).appendTo($panel);
            });
            $('<a class="pinc-status-link"></a>').attr('href', r.page).text('pinc connector →').appendTo($panel);
        });
    }

    /* ---- Recordings: the calls module's players go through the module ---- */

    function recordingSrc(recordId) {
        return ACTION + 'Recording&record=' + encodeURIComponent(recordId);
    }

    function player(recordId) {
        return $('<audio controls preload="none" class="pinc-recording"></audio>').attr('src', recordingSrc(recordId));
    }

    function rewriteRecordings() {
        // List view: every row's recording link (stock) or <audio> (SalesPlatform's ListenRecord).
        $('tr.listViewEntries[data-id]').each(function () {
            var $row = $(this), id = String($row.attr('data-id'));
            $row.find('a[href*="/recording?"], audio[src*="ListenRecord"]').each(function () {
                $(this).replaceWith(player(id));
            });
        });
        // Detail view of one call.
        var record = /[?&]record=(\d+)/.exec(window.location.search);
        if (record && /[?&]view=Detail/.test(window.location.search)) {
            $('a[href*="/recording?"], audio[src*="ListenRecord"]').not('.pinc-recording').each(function () {
                $(this).replaceWith(player(record[1]));
            });
        }
    }

    function watchRecordings() {
        rewriteRecordings();
        if (!window.MutationObserver) {
            return;
        }
        var pending = false;
        new window.MutationObserver(function () {
            if (!pending) {
                pending = true;
                window.setTimeout(function () {
                    pending = false;
                    rewriteRecordings();
                }, 200);
            }
        }).observe(document.body, {childList: true, subtree: true});
    }

    $(function () {
        if (!$('body').hasClass('pinc-window')) {  // the card window links its own
            $('<link rel="stylesheet" type="text/css">').attr('href', scriptBase() + 'pinc.css').appendTo('head');
        }
        var query = window.location.search;
        if (/[?&]module=PBXManager(&|$)/.test(query)) {
            if (/[?&]parent=Settings(&|$)/.test(query)) {
                showStatus();
            } else {
                watchRecordings();
            }
        }
        start();
    });
}(window, document));
