export { jira } from './jira-source';
export { JiraRuntime } from './jira-runtime';
