export { changeWorkflow, statusQuery, ticketUpdatedSignal } from './change-workflow';
