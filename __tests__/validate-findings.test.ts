import { describe, expect, test } from '@jest/globals'
import { findingsOf } from '../src/validate/findings.js'

// orun's error texts (cmd/orun/main.go validateFiles; internal/loader, internal/normalize,
// internal/trigger): `✕ <error>` on stderr, yaml.v3's line numbers inside.
describe('findingsOf', () => {
  test('a yaml.v3 syntax error: its line; colours and the progress lines are ignored', () => {
    const output =
      '□ Validating intent...\n\x1b[31m✕\x1b[0m failed to load intent: failed to parse intent YAML: yaml: line 12: did not find expected key\n'
    expect(findingsOf(output, 'intent.yaml')).toEqual([
      {
        message:
          'failed to load intent: failed to parse intent YAML: yaml: line 12: did not find expected key',
        file: 'intent.yaml',
        line: 12
      }
    ])
  })

  test('yaml.v3 unmarshal errors: one finding per line it names', () => {
    const output = [
      '✕ failed to load intent: failed to parse intent YAML: yaml: unmarshal errors:',
      '  line 7: cannot unmarshal !!str `x` into []string',
      '  line 9: cannot unmarshal !!seq into map[string]string',
      ''
    ].join('\n')
    expect(findingsOf(output, 'intent.yaml').map(f => [f.line, f.message])).toEqual([
      [
        7,
        'failed to load intent: failed to parse intent YAML: yaml: unmarshal errors: line 7: cannot unmarshal !!str `x` into []string'
      ],
      [
        9,
        'failed to load intent: failed to parse intent YAML: yaml: unmarshal errors: line 9: cannot unmarshal !!seq into map[string]string'
      ]
    ])
  })

  test('a component manifest names its own file', () => {
    const output =
      '✕ failed to load intent: failed to parse component manifest apps/api/component.yaml: yaml: line 3: mapping values are not allowed in this context\n'
    expect(findingsOf(output, 'intent.yaml')).toEqual([
      expect.objectContaining({ file: 'apps/api/component.yaml', line: 3 })
    ])
  })

  test("orun's joined trigger errors: one finding each, on the intent, without a line", () => {
    const output = [
      '✕ trigger validation failed:',
      '  component "api" subscription "dev": profileRules[0].profile is required',
      '  environment "prod": dependencyMode "x" is not one of enforced|advisory|disabled'
    ].join('\n')
    expect(findingsOf(output, 'intent.yaml')).toEqual([
      {
        message:
          'trigger validation failed: component "api" subscription "dev": profileRules[0].profile is required',
        file: 'intent.yaml'
      },
      {
        message:
          'trigger validation failed: environment "prod": dependencyMode "x" is not one of enforced|advisory|disabled',
        file: 'intent.yaml'
      }
    ])
  })

  test('an older orun prints Error: <error>; output without an error line has no findings', () => {
    expect(
      findingsOf('Error: normalization failed: duplicate component name: api\n', 'i.yaml')
    ).toEqual([{ message: 'normalization failed: duplicate component name: api', file: 'i.yaml' }])
    expect(findingsOf('□ Validating intent...\n✓ Intent is valid\n', 'intent.yaml')).toEqual([])
  })
})
