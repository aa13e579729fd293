<?php
/*
 * Uninstall pinc's vtiger module completely (vtiger has no uninstall button for modules):
 *
 *     cd /path/to/vtiger && php modules/Pinc/uninstall.php
 *
 * as the web server's user. vtlib deletes the module (firing module.preuninstall, which
 * unregisters its header script and Settings entry); then its table and files go.
 * Command line only: over the web it answers 404.
 */

if (PHP_SAPI !== 'cli') {
    http_response_code(404);
    exit;
}
chdir(dirname(__FILE__) . '/../..');
if (!is_file('config.inc.php') || !is_file('vtlib/Vtiger/Module.php')) {
    fwrite(STDERR, "run this from vtiger's folder: php modules/Pinc/uninstall.php\n");
    exit(2);
}
// What vtiger's own entry points load (vtigercron.php): vtlib's delete needs the runtime.
require_once 'config.inc.php';
if (is_file('vendor/autoload.php')) {
    require_once 'vendor/autoload.php';
}
require_once 'include/utils/utils.php';
require_once 'includes/Loader.php';
vimport('includes.runtime.EntryPoint');
require_once 'vtlib/Vtiger/Module.php';

$module = Vtiger_Module::getInstance('Pinc');
if ($module) {
    $module->delete();
    echo "module Pinc deleted\n";
}
$db = PearDatabase::getInstance();
$db->pquery('DROP TABLE IF EXISTS vtiger_pinc_settings', array());

function pinc_remove($path) {
    if (is_dir($path) && !is_link($path)) {
        foreach (scandir($path) as $entry) {
            if ($entry !== '.' && $entry !== '..') {
                pinc_remove("$path/$entry");
            }
        }
        rmdir($path);
    } elseif (file_exists($path) || is_link($path)) {
        unlink($path);
    }
}

$paths = array('modules/Settings/Pinc', 'layouts/v7/modules/Settings/Pinc');
foreach (glob('languages/*/Pinc.php') as $file) {
    $paths[] = $file;
}
foreach (glob('languages/*/Settings/Pinc.php') as $file) {
    $paths[] = $file;
}
$paths[] = 'modules/Pinc';  // last: this very file lives there
foreach ($paths as $path) {
    pinc_remove($path);
}
echo "files removed\n";
