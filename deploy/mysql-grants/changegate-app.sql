-- changegate: the application account's UPDATE on the tables it keeps in place, and on nothing else.
--
-- Run as root by the changegate-grants one-shot after every changegate-migrate run (docker-compose.yml), not by
-- mysql-init: MySQL grants on a table only once the table exists, unless the grant also gives CREATE, which
-- changegate_app must not hold; the migrations make these tables. GRANT is idempotent, so every `up` runs it again,
-- and a table a later migration adds gets its grant the same way. There is still no DELETE on any of them.

-- API tokens are revoked in place; the table's BEFORE UPDATE trigger admits nothing else (no un-revoking, new
-- roles or other hash).
GRANT UPDATE ON `changegate`.`api_tokens` TO 'changegate_app'@'%';
-- The identity inventory, a projection kept in place (written in the transaction of the evidence row that justifies
-- each change); a trigger refuses DELETE too: an identity that is gone stays as revoked.
GRANT UPDATE ON `changegate`.`identity_inventory` TO 'changegate_app'@'%';
-- The reconciliation cursors, one row per ServiceNow instance, moved forward in place.
GRANT UPDATE ON `changegate`.`itsm_sync_cursors` TO 'changegate_app'@'%';
-- Drift findings, kept in place the same way (seen again, resolved, the remediation change named).
GRANT UPDATE ON `changegate`.`drift_findings` TO 'changegate_app'@'%';
-- The emergency-exception ledger, escalated and decided in place; a trigger keeps a decision as it was taken.
GRANT UPDATE ON `changegate`.`emergency_exceptions` TO 'changegate_app'@'%';
-- Certification items, kept in place the same way (decided, escalated, the revocation change named); a trigger keeps
-- a decision as it was taken.
GRANT UPDATE ON `changegate`.`certification_items` TO 'changegate_app'@'%';
