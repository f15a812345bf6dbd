// Lints Cypher statements with Neo4j's own grammar and semantic analysis.
// stdin: JSON [{name, query, parameters}]; stdout: JSON [{name, diagnostics: [{severity, message}]}]
// The function and procedure registry comes from the package's own Neo4j signature data, so
// unknown or deprecated functions are reported. Labels, types and property keys are not
// declared: a migration tool renders names that do not exist yet. Parameters are declared from
// each statement's sample values, because the linter cannot know them.
import { lintCypherQuery, testData } from '@neo4j-cypher/language-support';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const statements = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const { functions, procedures } = testData.mockSchema;
const severity = { 1: 'error', 2: 'warning', 3: 'information', 4: 'hint' };
const results = statements.map(({ name, query, parameters }) => {
  const { diagnostics } = lintCypherQuery(query, { functions, procedures, parameters: parameters ?? {} });
  return { name, diagnostics: diagnostics.map((d) => ({ severity: severity[d.severity] ?? String(d.severity), message: d.message })) };
});
process.stdout.write(JSON.stringify(results));
