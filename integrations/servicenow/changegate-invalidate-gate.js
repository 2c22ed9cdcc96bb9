/* global current, previous */
/*
 * Business rule "changegate: invalidate identity cleanup on edit"   (see INSTALL.md, step 4)
 *   Table: Change Request [change_request]   Application: GLOBAL
 *   When: before   Insert: yes   Update: yes   Order: 9900   Advanced: yes
 *   Filter conditions: Identity actions | changes
 *
 * Whenever u_identity_actions changes, whatever changegate said about the old actions no longer holds: the gate
 * goes back to "pending" (digest cleared) in the same save, until the gateway has judged the new text and written
 * its verdict. The form then shows at once that the cleanup is open again, and the block-close rule refuses a
 * close in this save or any later one until then. "pending" rather than blank, so that emptying the actions of a
 * change whose cleanup is still running does not make it look like a change that never had any.
 *
 * Order 9900: after the usual before rules (so it sees the actions as they will be saved) and before
 * "changegate: block close without identity cleanup" (order 10000), which must see the invalidated gate.
 * Business rules write fields regardless of field ACLs, so this works although only the integration role may
 * write u_identity_cleanup.
 *
 * Written in ES5: global-scope server scripts may run in compatibility mode.
 */
(function executeRule(current, previous /* null on insert */) {
  // The filter condition already says this; checking again keeps the rule safe if the condition is edited.
  if (!current.u_identity_actions.changes()) return;

  current.setValue('u_identity_cleanup', 'pending');
  current.setValue('u_identity_cleanup_digest', '');
})(current, previous);
