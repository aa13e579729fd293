{* pinc's vtiger module: the live call card in a window of its own (view=Card). *}
<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{vtranslate('LBL_PINC_CARD_WINDOW', 'Pinc')|escape:'html'}</title>
<link rel="stylesheet" type="text/css" href="modules/Pinc/resources/pinc.css?v={$PINC_VERSION|escape:'url'}">
<script src="layouts/v7/lib/jquery/jquery.min.js"></script>
<script src="modules/Pinc/resources/pinc.js?v={$PINC_VERSION|escape:'url'}"></script>
</head>
<body class="pinc-window">
<h4 class="pinc-window-title">{$PINC_USER|escape:'html'}{if $PINC_EXT neq ''} ({$PINC_EXT|escape:'html'}){/if}</h4>
<div id="pinc-cards" aria-live="polite"><div class="pinc-empty">{vtranslate('LBL_PINC_NO_CALLS', 'Pinc')|escape:'html'}</div></div>
</body>
</html>
