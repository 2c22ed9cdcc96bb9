/** Controls every operations view shares: the system filter, and when its numbers were read. */

export function SystemFilter({ value, onChange }: { value: string; onChange: (system: string) => void }) {
  return (
    <label>
      System <input value={value} onChange={(e) => onChange(e.target.value.trim())} placeholder="all" size={14} />
    </label>
  );
}

export function Updated({ at }: { at?: Date }) {
  return <span className="muted">{at ? `updated ${at.toLocaleTimeString()}` : 'loading…'}</span>;
}
