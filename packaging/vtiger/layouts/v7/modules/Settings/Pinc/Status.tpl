{* pinc's vtiger module: the connector's state (Settings -> Integration -> pinc connector). *}
{strip}
<div class="col-sm-12 col-xs-12" id="pinc-status-page">
	<div class="widget_header row">
		<div class="col-sm-12"><h4>{vtranslate('LBL_PINC_CONNECTOR', $QUALIFIED_MODULE)}</h4></div>
	</div>
	<hr>
	<div class="pinc-problems">
		{if empty($PINC_STATUS.problems)}
			<div class="alert alert-success" data-pinc-state="ok">{vtranslate('PINC_ALL_OK', $QUALIFIED_MODULE)}</div>
		{else}
			{foreach item=PROBLEM from=$PINC_STATUS.problems}
				<div class="alert {if $PROBLEM[0] eq 'error'}alert-danger{else}alert-warning{/if}" data-pinc-problem="{$PROBLEM[1]|escape:'html'}">
					{vtranslate('PINC_'|cat:$PROBLEM[1], $QUALIFIED_MODULE)}
					{if $PROBLEM[2] neq ''}<br><small>{$PROBLEM[2]|escape:'html'}</small>{/if}
				</div>
			{/foreach}
		{/if}
	</div>
	<table class="table detailview-table no-border pinc-status-table">
		<tbody>
			<tr><td class="fieldLabel" style="width:30%">{vtranslate('LBL_PINC_URL', $QUALIFIED_MODULE)}</td>
				<td data-pinc="url">{$PINC_APP_URL|escape:'html'}</td></tr>
			<tr><td class="fieldLabel">{vtranslate('LBL_PINC_REACHABLE', $QUALIFIED_MODULE)}</td>
				<td data-pinc="reachable">{if $PINC_STATUS.reachable}{vtranslate('LBL_YES', $QUALIFIED_MODULE)}{else}{vtranslate('PINC_unreachable_short', $QUALIFIED_MODULE)}{/if}</td></tr>
			{if $PINC_VERSION neq ''}
				<tr><td class="fieldLabel">{vtranslate('LBL_PINC_VERSION', $QUALIFIED_MODULE)}</td>
					<td data-pinc="version">{$PINC_VERSION|escape:'html'}</td></tr>
			{/if}
			{if $PINC_AMI}
				<tr><td class="fieldLabel">{vtranslate('LBL_PINC_AMI', $QUALIFIED_MODULE)}</td>
					<td data-pinc="ami">{if $PINC_AMI.connected}{vtranslate('LBL_PINC_CONNECTED', $QUALIFIED_MODULE)}{if $PINC_AMI.since} ({$PINC_AMI.since|escape:'html'}){/if}{else}{vtranslate('LBL_PINC_DISCONNECTED', $QUALIFIED_MODULE)}{/if}</td></tr>
				<tr><td class="fieldLabel">{vtranslate('LBL_PINC_ASTERISK', $QUALIFIED_MODULE)}</td>
					<td data-pinc="asterisk">{$PINC_AMI.asterisk_version|escape:'html'}</td></tr>
			{/if}
			{if $PINC_CRM}
				<tr><td class="fieldLabel">{vtranslate('LBL_PINC_DELIVERY', $QUALIFIED_MODULE)}</td>
					<td data-pinc="delivery">{$PINC_CRM.state|escape:'html'}</td></tr>
				<tr><td class="fieldLabel">{vtranslate('LBL_PINC_BACKLOG', $QUALIFIED_MODULE)}</td>
					<td data-pinc="backlog">{$PINC_CRM.backlog|escape:'html'}{if $PINC_CRM.oldest_age} ({$PINC_CRM.oldest_age|escape:'html'} s){/if}</td></tr>
			{/if}
			<tr><td class="fieldLabel">{vtranslate('LBL_PINC_MODULE_VERSION', $QUALIFIED_MODULE)}</td>
				<td>{$PINC_MODULE_VERSION|escape:'html'}</td></tr>
		</tbody>
	</table>
	<form method="post" action="index.php" class="form-inline pinc-settings">
		<input type="hidden" name="module" value="Pinc">
		<input type="hidden" name="parent" value="Settings">
		<input type="hidden" name="action" value="Save">
		<label for="pinc-browser-url">{vtranslate('LBL_PINC_BROWSER_URL', $QUALIFIED_MODULE)}</label>&nbsp;
		<input type="text" class="inputElement" id="pinc-browser-url" name="browser_url" size="40" value="{$PINC_BROWSER_URL|escape:'html'}" placeholder="{$PINC_APP_URL|escape:'html'}">&nbsp;
		<button type="submit" class="btn btn-success">{vtranslate('LBL_SAVE', $QUALIFIED_MODULE)}</button>
		{if $PINC_SAVED eq 'ok'}&nbsp;<span class="text-success">{vtranslate('LBL_PINC_SAVED', $QUALIFIED_MODULE)}</span>{/if}
		{if $PINC_SAVED eq 'bad_url'}&nbsp;<span class="text-danger">{vtranslate('LBL_PINC_BAD_URL', $QUALIFIED_MODULE)}</span>{/if}
		<p class="help-block">{vtranslate('LBL_PINC_BROWSER_URL_HELP', $QUALIFIED_MODULE)}</p>
	</form>
</div>
{/strip}
