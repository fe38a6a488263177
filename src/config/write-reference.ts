// Regenerates docs/configuration.md and docs/config-schema.json from the zod schemas: `npm run docs:config`.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { configJsonSchema, configReferenceMarkdown } from './reference.js';

const docs = path.resolve(import.meta.dirname, '../../docs');
writeFileSync(path.join(docs, 'config-schema.json'), JSON.stringify(configJsonSchema(), null, 2) + '\n');
writeFileSync(path.join(docs, 'configuration.md'), configReferenceMarkdown());
process.stdout.write(`wrote ${path.join(docs, 'configuration.md')} and config-schema.json\n`);
