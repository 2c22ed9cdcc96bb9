/* global gs, current, previous, GlideDateTime, GlideCertificateEncryption, GlideStringUtil, sn_ws */
/*
 * Business rule "changegate: webhook"                         (see INSTALL.md, step 4)
 *   Table: Change Request [change_request]   Application: Global
 *   When: after   Insert: yes   Update: yes   Delete: no   Order: 10000   Advanced: yes
 *   Filter conditions: State | changes OR Approval | changes OR Type | changes OR Identity actions | changes
 *
 * Only the fields the gateway acts on trigger a delivery: its own write-backs (work notes, the gate fields) and
 * other edits do not echo back as deliveries, which would cost the gateway a round trip each and tell it nothing.
 *
 * Sends the change as the Table API returns it (sysparm_display_value=false) to the changegate gateway,
 * signed with HMAC-SHA256 over "<timestamp>.<body>" (Base64) so the gateway can reject forged or replayed
 * deliveries. ServiceNow has no delivery id of its own: the gateway de-duplicates on sys_id + sys_mod_count
 * and logs the X-Changegate-Event-Id.
 *
 * Written in ES5: global-scope server scripts may run in compatibility mode.
 */
(function executeRule(current, previous /* null on insert */) {
  var endpoint = gs.getProperty('x_changegate.webhook_url', '');
  var secret = gs.getProperty('x_changegate.webhook_secret', '');
  if (!endpoint || !secret) {
    gs.error('changegate webhook: x_changegate.webhook_url or x_changegate.webhook_secret is not set; ' +
      current.getValue('number') + ' was not sent');
    return;
  }

  var body = asciiJson(tableApiRecord(current));
  var timestamp = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
  // GlideCertificateEncryption is the global-scope class (CertificateEncryption is its scoped-app twin, and this rule
  // must live in the global scope); generateMac takes the key Base64-encoded and answers the MAC in Base64.
  var signature = new GlideCertificateEncryption().generateMac(
    GlideStringUtil.base64Encode(secret), 'HmacSHA256', timestamp + '.' + body);

  var request = new sn_ws.RESTMessageV2();
  request.setEndpoint(endpoint);
  request.setHttpMethod('post');
  request.setHttpTimeout(10000);
  request.setRequestHeader('Content-Type', 'application/json');
  request.setRequestHeader('X-Changegate-Signature', signature);
  request.setRequestHeader('X-Changegate-Timestamp', timestamp);
  request.setRequestHeader('X-Changegate-Event-Id', gs.generateGUID());
  request.setRequestBody(body);
  // executeAsync goes through the ECC queue after this transaction; waitForResponse() here would hold the
  // user's save hostage to the gateway's latency, so it is deliberately never called.
  request.executeAsync();

  /* The same shape as GET /api/now/table/change_request/{sys_id}: every value a string, references as
   * {link, value}, journal fields as "" (their text lives in sys_journal_field). */
  function tableApiRecord(gr) {
    var instance = String(gs.getProperty('glide.servlet.uri', '')).replace(/\/+$/, '');
    var record = {};
    var elements = gr.getElements();
    var count = typeof elements.size === 'function' ? elements.size() : elements.length;
    for (var i = 0; i < count; i++) {
      var element = typeof elements.get === 'function' ? elements.get(i) : elements[i];
      var name = String(element.getName());
      var type = String(element.getED().getInternalType());
      if (type === 'password' || type === 'password2') continue; // never ship secrets, even encrypted ones
      var raw = gr.getValue(name);
      var value = raw === null || raw === undefined ? '' : String(raw);
      if (type === 'journal' || type === 'journal_input' || type === 'journal_list') {
        record[name] = '';
      } else if (type === 'boolean') {
        // getValue() yields "1"/"0" for booleans; the Table API says "true"/"false".
        record[name] = value === '' ? '' : (value === '1' || value === 'true' ? 'true' : 'false');
      } else if (type === 'reference' && value !== '') {
        record[name] = {
          link: instance + '/api/now/table/' + element.getReferenceTable() + '/' + value,
          value: value
        };
      } else {
        record[name] = value;
      }
    }
    return record;
  }

  /* Escapes every non-ASCII character as \uXXXX: the signed string and the sent bytes are then identical
   * whatever charset generateMac and the HTTP client pick, and the JSON still decodes to the same text. */
  function asciiJson(value) {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, function (ch) {
      return '\\u' + ('0000' + ch.charCodeAt(0).toString(16)).slice(-4);
    });
  }
})(current, previous);
