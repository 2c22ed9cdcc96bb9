export { servicenow } from './servicenow-source';
