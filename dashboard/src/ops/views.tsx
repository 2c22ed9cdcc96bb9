import { useEffect, useState } from 'react';
import type { ReactNode } from 'react';
import { DeployCredentialsView } from './DeployCredentialsView';
import { InventoryView } from './InventoryView';
import { KindsView } from './KindsView';
import { LatencyView } from './LatencyView';
import { TargetsView } from './TargetsView';

/** The operations views (6–10): each its own fragment route, read-only for every role that may read it. */
export const OPS_VIEWS: ReadonlyArray<{ hash: string; title: string; render: (token: string) => ReactNode }> = [
  { hash: '#/targets', title: 'Targets', render: (token) => <TargetsView token={token} /> },
  { hash: '#/inventory', title: 'Inventory', render: (token) => <InventoryView token={token} /> },
  { hash: '#/deploys', title: 'Deploy credentials', render: (token) => <DeployCredentialsView token={token} /> },
  { hash: '#/latency', title: 'Latency', render: (token) => <LatencyView token={token} /> },
  { hash: '#/kinds', title: 'Kinds', render: (token) => <KindsView token={token} /> },
];

/** The operations view the URL's fragment names, if it names one. */
export function useOpsView() {
  const [, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  // Read at each render, not only on hashchange: the return from login puts the asked-for view back with
  // history.replaceState, which fires no event.
  return OPS_VIEWS.find((v) => v.hash === location.hash);
}

export function OpsNavLinks() {
  return (
    <>
      {OPS_VIEWS.map((v) => (
        <a key={v.hash} href={v.hash}>
          {v.title}
        </a>
      ))}
    </>
  );
}
