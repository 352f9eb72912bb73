-- What each (list, plugin) keeps in plugin_kv, kept up to date in the transaction of every
-- kv write, so a write past the plugin's quota ([limits] kv_keys, kv_bytes) is refused
-- without counting the plugin's keys each time.
CREATE TABLE plugin_kv_usage (
    list   TEXT   NOT NULL,
    plugin TEXT   NOT NULL,
    keys   BIGINT NOT NULL,
    bytes  BIGINT NOT NULL,
    PRIMARY KEY (list, plugin)
);
INSERT INTO plugin_kv_usage (list, plugin, keys, bytes)
SELECT list, plugin, COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM plugin_kv GROUP BY list, plugin;
