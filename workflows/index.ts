export { changeWorkflow, statusQuery, ticketUpdatedSignal } from './change-workflow';
export { discoveryWorkflow, inventoryWorkflow } from './inventory-workflow';
export { leakWorkflow } from './leak-workflow';
export { exceptionReadBackWorkflow } from './exceptions';
export { certificationWorkflow } from './certification-workflow';
