export { createConnectorActivities, type ConnectorActivities } from './connector-activities';
export { createTicketActivities, type TicketActivities } from './ticket-activities';
export { createInventoryActivities, type InventoryActivities } from './inventory-activities';
export { createClosureActivities, type ClosureActivities } from './closure-activities';
export { createDeployActivities, type DeployActivities } from './deploy-activities';
export { createDecisionActivities, type DecisionActivities } from './decision-activities';
export { createSelectionActivities, type SelectionActivities } from './selection-activities';
export { createTicketLifecycleActivities, type TicketLifecycleActivities } from './ticket-lifecycle-activities';
