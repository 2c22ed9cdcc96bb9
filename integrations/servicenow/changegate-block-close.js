/* global gs, current, previous */
/*
 * Business rule "changegate: block close without identity cleanup"   (see INSTALL.md, step 4)
 *   Table: Change Request [change_request]   Application: GLOBAL (a scoped rule's abort is ignored)
 *   When: before   Insert: yes   Update: yes   Order: 10000   Advanced: yes
 *   Filter conditions: State | changes to | Closed
 *
 * Refuses to let a change reach Closed until the gateway has written u_identity_cleanup = "verified",
 * which it does only once every identity step of the change is verified. The gateway writes that field
 * through the Table API, so no HTTP call happens inside this database transaction.
 * A REST caller gets HTTP 403 {"error": {"message": "Operation Failed", "detail": "... aborted by Business
 * Rule 'changegate: block close without identity cleanup^<sys_id>' ..."}}.
 *
 * Insert is covered too: a change created directly in state Closed must not slip past the gate.
 * Order 10000 runs this after the other before rules, so it judges the values that would be saved.
 */
(function executeRule(current, previous /* null on insert */) {
  // The filter condition already says this; checking again keeps the rule safe if the condition is edited.
  if (!current.state.changesTo(3)) return;
  if (String(current.getValue('u_identity_cleanup')) === 'verified') return;

  current.setAbortAction(true);
  gs.addErrorMessage(gs.getMessage(
    'This change cannot be closed yet: changegate has not verified the identity cleanup it requires. ' +
    'See the work notes for what is still open.'));
})(current, previous);
