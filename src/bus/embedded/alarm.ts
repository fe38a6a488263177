/**
 * The sleep of a poll loop that a local write, freed capacity or close can cut short. A wake-up that comes
 * while the loop is not sleeping makes its next sleep return at once, so none is missed.
 */
export class Alarm {
  private timer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;
  private wokenEarly = false;

  /** Resolves after `ms`, or at the next wake(). Deliberately not unref'd: like a broker socket, a live poll loop keeps its process running. */
  sleep(ms: number): Promise<void> {
    if (this.wokenEarly) {
      this.wokenEarly = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.wakeUp = () => {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.wakeUp = undefined;
        resolve();
      };
      this.timer = setTimeout(this.wakeUp, Math.max(0, ms));
    });
  }

  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.wokenEarly = true;
  }
}
