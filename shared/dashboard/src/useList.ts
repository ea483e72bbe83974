import { useCallback, useEffect, useState } from "react";
import { api } from "./api";

/** A list the page reads from `path` ({items}), and changes to it: `act` runs a change, shows
 * its error if it fails, and reads the list again either way. */
export function useList<T>(path: string) {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(() => {
    api<{ items: T[] }>("GET", path)
      .then((r) => setItems(r.items))
      .catch(setError);
  }, [path]);
  useEffect(load, [load]);

  async function act(work: () => Promise<unknown>) {
    setError(null);
    try {
      await work();
    } catch (e) {
      setError(e);
    }
    load();
  }

  return { items, error, act };
}
