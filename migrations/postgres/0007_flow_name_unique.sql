-- 0007 (PostgreSQL only; issue 20, cluster): a flow created over the API keeps its name
-- unique across the cluster, as one node's memory keeps it unique there. Unnamed flows and
-- file flows (each node's own flows.dir) are not covered. Rows that already share a name
-- (possible only from nodes of one cluster racing before this index) keep it on the newest;
-- the others are renamed "<name>-<id>", in the row and in its JSON body.
UPDATE flows f
   SET name = f.name || '-' || f.id,
       body = jsonb_set(f.body::jsonb, '{name}', to_jsonb(f.name || '-' || f.id))::text
 WHERE f.source = 'api' AND f.name <> ''
   AND EXISTS (
       SELECT 1 FROM flows g
        WHERE g.source = 'api' AND g.name = f.name AND g.id <> f.id
          AND (g.tm_update, g.id) > (f.tm_update, f.id));
CREATE UNIQUE INDEX flows_api_name ON flows (name) WHERE source = 'api' AND name <> '';
