import { defineSearchAttributeKey } from '@temporalio/common';

/** Keyword attributes for dashboards: ticket ids and gate state only — never identities or secrets. */
export const SEARCH_ATTRIBUTES = {
  ticket: defineSearchAttributeKey('ChangegateTicket', 'KEYWORD'),
  source: defineSearchAttributeKey('ChangegateSource', 'KEYWORD'),
  gate: defineSearchAttributeKey('ChangegateGate', 'KEYWORD'),
};

/** For `temporal server start-dev --search-attribute` and `temporal operator search-attribute create`. */
export const SEARCH_ATTRIBUTE_FLAGS = ['ChangegateTicket=Keyword', 'ChangegateSource=Keyword', 'ChangegateGate=Keyword'];
