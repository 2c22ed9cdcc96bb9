import type { ComponentType } from 'react';
import type { DashboardConfig } from './api';
import type { May } from './access';
import { AgeingView } from './AgeingView';
import { CertificationsView } from './CertificationsView';
import { ChangesView } from './ChangesView';
import { ExceptionsView } from './ExceptionsView';

/** What every view is given: the person's access token and roles, the dashboard's settings, what the roles admit. */
export interface ViewProps {
  token: string;
  roles: string[];
  config: DashboardConfig;
  may: May;
}

/**
 * The views in the navigation, in its order; each is `#/<route>`, the first also `#/`. A new view is one line here.
 * (A ticket, `#/changes/<source>/<key>`, is reached from the views, not listed.)
 */
export const VIEWS: ReadonlyArray<{ route: string; title: string; View: ComponentType<ViewProps> }> = [
  { route: 'changes', title: 'Changes', View: ChangesView },
  { route: 'ageing', title: 'Ageing', View: AgeingView },
  { route: 'exceptions', title: 'Exceptions', View: ExceptionsView },
  { route: 'certifications', title: 'Certifications', View: CertificationsView },
];
