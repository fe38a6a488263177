import { inject } from 'vitest';

/** Real broker addresses from the global setup; null when that broker is unavailable (never on CI). */
export function redisUrl(): string | null {
  return inject('redisUrl');
}

export function kafkaBrokers(): string[] | null {
  const brokers = inject('kafkaBrokers');
  return brokers ? brokers.split(',') : null;
}

export function rabbitmqUrl(): string | null {
  return inject('rabbitmqUrl');
}
