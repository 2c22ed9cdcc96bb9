/* global gs, current, previous, GlideDigest */
/*
 * Business rule "changegate: block close without identity cleanup"   (see INSTALL.md, step 4)
 *   Table: Change Request [change_request]   Application: GLOBAL (a scoped rule's abort is ignored)
 *   When: before   Insert: yes   Update: yes   Order: 10000   Advanced: yes
 *   Filter conditions: State | changes
 *
 * Closed-like states: every state value listed in the system property x_changegate.closed_states (comma-separated,
 * default "3", Closed). An instance with states of its own that close a change (e.g. a custom "Closed - Skipped")
 * lists them there, and maps them to "closed" in the gateway's SERVICENOW_STATE_PHASES.
 *
 * Lets a change reach a closed-like state only when one of these holds:
 *   - it carries no identity actions (u_identity_actions is blank), they were not edited in this save, and the
 *     gate is not "pending": there is nothing for changegate to verify, so changegate being slow or down never
 *     keeps such a change open;
 *   - the gateway has written u_identity_cleanup = "verified" (or "not_applicable") together with
 *     u_identity_cleanup_digest = the SHA-256 of exactly the u_identity_actions text it judged, that digest
 *     matches the text being saved, and the actions were not edited in this save.
 * Binding the gate to a digest means an edit of the actions can never ride on an earlier verification, whatever
 * order the edit, the gateway's write and the close arrive in. The gateway writes both fields through the Table
 * API, so no HTTP call happens inside this database transaction.
 * A REST caller gets HTTP 403 {"error": {"message": "Operation Failed", "detail": "... aborted by Business
 * Rule 'changegate: block close without identity cleanup^<sys_id>' ..."}}.
 *
 * Insert is covered too: a change created directly in state Closed must not slip past the gate.
 * Order 10000 runs this after the other before rules (and after "changegate: invalidate identity cleanup on
 * edit", order 9900), so it judges the values that would be saved.
 *
 * Written in ES5: global-scope server scripts may run in compatibility mode.
 */
(function executeRule(current, previous /* null on insert */) {
  // The filter condition already says "changes"; checking again keeps the rule safe if the condition is edited.
  if (!current.state.changes() || !closedLike(String(current.getValue('state')))) return;

  // Refuse first, allow at the end: should anything below throw (an API missing on some release), the close
  // stays refused instead of slipping through. An abort set by an earlier rule is kept either way.
  var abortedBefore = current.isActionAborted();
  current.setAbortAction(true);

  var actions = text(current.getValue('u_identity_actions'));
  var gate = text(current.getValue('u_identity_cleanup'));
  var edited = current.u_identity_actions.changes();

  if ((!edited && /^\s*$/.test(actions) && gate !== 'pending') ||
      (!edited && (gate === 'verified' || gate === 'not_applicable') &&
       text(current.getValue('u_identity_cleanup_digest')).toLowerCase() === actionsDigest(actions))) {
    current.setAbortAction(abortedBefore);
    return;
  }

  gs.addErrorMessage(gs.getMessage(
    'This change cannot be closed yet: changegate has not verified the identity cleanup its identity actions ' +
    'require (or they were edited since). See the work notes for what is still open.'));

  function text(value) {
    return value === null || value === undefined ? '' : String(value);
  }

  function closedLike(state) {
    var listed = String(gs.getProperty('x_changegate.closed_states', '3') || '3').split(',');
    for (var i = 0; i < listed.length; i++) {
      if (listed[i].replace(/^\s+|\s+$/g, '') === state) return true;
    }
    return false;
  }

  /* Lower-case SHA-256 hex over the text with every character from U+007F up written as \uXXXX, so the digest
   * does not depend on the charset GlideDigest encodes with. The gateway computes the same (identityActionsDigest
   * in src/itsm/servicenow/servicenow-gate.ts). */
  function actionsDigest(value) {
    var ascii = value.replace(/[\u007f-\uffff]/g, function (ch) {
      return '\\u' + ('0000' + ch.charCodeAt(0).toString(16)).slice(-4);
    });
    return String(new GlideDigest().getSHA256Hex(ascii)).toLowerCase();
  }
})(current, previous);
