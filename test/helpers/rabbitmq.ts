import { deleteRabbitObjects, listRabbitNames } from '../../src/bus/rabbitmq/maintenance.js';

/**
 * Deletes every queue and exchange whose name starts with `prefix` (a test run's own bus prefix). Listing
 * needs rabbitmqctl on this host (our machines and CI run the broker locally); elsewhere it deletes nothing.
 */
export async function deleteRabbitPrefix(url: string, prefix: string): Promise<void> {
  await deleteRabbitObjects(url, await listRabbitNames(prefix));
}
