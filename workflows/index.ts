export { changeWorkflow, statusQuery, ticketUpdatedSignal } from './change-workflow';
export { inventoryWorkflow } from './inventory-workflow';
