struct P;
impl roost_plugin_sdk::Plugin for P {}
roost_plugin_sdk::export_plugin!(P, hooks = []);
