import kafkajs from 'kafkajs';
import type { KafkaAclBinding, KafkaOperation } from '../../acl/kafka.js';
import type { KafkaBusConfig } from '../../config/bus.js';
import type { Logger } from '../../logger.js';
import { createKafkaClient, kafkaTlsOptions, KafkaSockets } from './client.js';
import { toBusError } from './errors.js';

const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

const OPERATIONS: Record<KafkaOperation, number> = {
  Read: AclOperationTypes.READ,
  Write: AclOperationTypes.WRITE,
  Create: AclOperationTypes.CREATE,
  Describe: AclOperationTypes.DESCRIBE,
  Delete: AclOperationTypes.DELETE,
};

/**
 * Creates the bindings on the cluster with the admin client of `config` (its SASL user must be allowed to
 * alter ACLs: a super user, or Alter on the cluster). Creating a binding that exists is a no-op on Kafka,
 * so applying twice is safe. Returns the number of ACL entries sent.
 */
export async function applyKafkaAcls(config: KafkaBusConfig, bindings: readonly KafkaAclBinding[], logger: Logger): Promise<number> {
  const sockets = new KafkaSockets();
  const admin = createKafkaClient(config, logger, sockets, kafkaTlsOptions(config, logger)).admin();
  const acl = bindings.flatMap((b) =>
    b.operations.map((operation) => ({
      resourceType: b.resourceType === 'topic' ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP,
      resourceName: b.name,
      resourcePatternType: b.patternType === 'prefixed' ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
      principal: b.principal,
      host: '*',
      operation: OPERATIONS[operation],
      permissionType: AclPermissionTypes.ALLOW,
    })),
  );
  try {
    await admin.connect();
    if (acl.length > 0) await admin.createAcls({ acl });
    return acl.length;
  } catch (err) {
    throw toBusError(err, 'create ACLs', config.brokers);
  } finally {
    await admin.disconnect().catch(() => undefined);
    sockets.destroy();
  }
}
