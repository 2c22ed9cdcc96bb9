import { WINDOWS, type WindowName } from './reports';
import { Updated } from './controls';

/** The window a report covers, and when its numbers were read. */
export function WindowPicker({ value, onChange, at }: { value: WindowName; onChange: (w: WindowName) => void; at?: Date }) {
  return (
    <>
      <label>
        Window{' '}
        <select value={value} onChange={(e) => onChange(e.target.value as WindowName)}>
          {(Object.keys(WINDOWS) as WindowName[]).map((w) => (
            <option key={w} value={w}>
              {WINDOWS[w].label}
            </option>
          ))}
        </select>
      </label>
      <Updated at={at} />
    </>
  );
}
