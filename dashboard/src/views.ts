import type { ComponentType } from 'react';
import type { DashboardConfig } from './api';
import type { May } from './access';
import { AgeingView } from './AgeingView';
import { CertificationsView } from './CertificationsView';
import { ChangesView } from './ChangesView';
import { ExceptionsView } from './ExceptionsView';
import { DeployCredentialsView } from './ops/DeployCredentialsView';
import { InventoryView } from './ops/InventoryView';
import { KindsView } from './ops/KindsView';
import { LatencyView } from './ops/LatencyView';
import { TargetsView } from './ops/TargetsView';

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
  { route: 'targets', title: 'Targets', View: TargetsView },
  { route: 'inventory', title: 'Inventory', View: InventoryView },
  { route: 'deploys', title: 'Deploy credentials', View: DeployCredentialsView },
  { route: 'latency', title: 'Latency', View: LatencyView },
  { route: 'kinds', title: 'Kinds', View: KindsView },
];
