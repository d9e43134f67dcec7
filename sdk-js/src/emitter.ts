// A small typed event emitter: on() returns the function that removes the handler. A
// handler that throws is reported to the logger and never breaks the SDK or other handlers.
export type Handler<T> = (event: T) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly handlers = new Map<keyof Events, Set<Handler<never>>>();

  constructor(private readonly onHandlerError: (name: string, error: unknown) => void) {}

  on<K extends keyof Events>(name: K, handler: Handler<Events[K]>): () => void {
    let set = this.handlers.get(name);
    if (!set) {
      set = new Set();
      this.handlers.set(name, set);
    }
    set.add(handler as Handler<never>);
    return () => {
      set.delete(handler as Handler<never>);
    };
  }

  emit<K extends keyof Events>(name: K, event: Events[K]): void {
    const set = this.handlers.get(name);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as Handler<Events[K]>)(event);
      } catch (e) {
        this.onHandlerError(String(name), e);
      }
    }
  }

  clear(): void {
    this.handlers.clear();
  }
}
