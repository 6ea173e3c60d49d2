# ct's YAML checks for many files in one Python process (xtask/src/ct/yamlcheck.rs).
#
# `ct lint` starts `yamale --schema S Chart.yaml` and `yamllint --config-file C
# FILE` once per file; each start costs a Python interpreter. This runs the
# same library calls those two command lines make, for every file at once,
# and prints one JSON document: per file, yamale's errors and yamllint's
# problems. A file passes where the command line would have exited 0:
# yamale without errors (strict mode, its default), yamllint without a
# problem of level "error" (warnings do not fail without --strict).
import json
import sys

request = json.load(sys.stdin)
out = {"schema": {}, "yamllint": {}}


def describe(error):
    return "%s: %s" % (type(error).__name__, error)


if request.get("schema_files"):
    import yamale

    try:
        schema = yamale.make_schema(request["schema"], parser="PyYAML")
        schema_error = None
    except Exception as error:  # the command line fails on any of these too
        schema, schema_error = None, "invalid schema %s: %s" % (request["schema"], describe(error))
    for path in request["schema_files"]:
        if schema is None:
            out["schema"][path] = [schema_error]
            continue
        try:
            data = yamale.make_data(path, parser="PyYAML")
            results = yamale.validate(schema, data, strict=True, _raise_error=False)
            out["schema"][path] = [str(r) for r in results if not r.isValid()]
        except Exception as error:
            out["schema"][path] = [describe(error)]

if request.get("yamllint_files"):
    import yaml
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    # yamllint parses every file twice: once for a syntax error
    # (`get_syntax_error`, PyYAML's pure-Python parser), once for the
    # cosmetic rules (its scanner's tokens). The first pass is about a third
    # of its time. libyaml, which PyYAML's wheel carries and whose parser the
    # pure one is a port of, answers "no syntax error" for most files at a
    # fraction of the cost; only a file libyaml refuses goes through
    # yamllint's own pass, so a syntax error is still yamllint's own problem,
    # with its line, column and wording. (yamllint 1.37.1, 404 files of the
    # bench's 200 charts: 8.2 s -> 5.5 s, the same answers.)
    pure_syntax_error = linter.get_syntax_error

    def syntax_error(buffer):
        try:
            for _ in yaml.parse(buffer, Loader=yaml.CBaseLoader):
                pass
        except yaml.YAMLError:
            return pure_syntax_error(buffer)
        return None

    if getattr(yaml, "__with_libyaml__", False):
        linter.get_syntax_error = syntax_error

    try:
        conf = YamlLintConfig(file=request["lintconf"])
        conf_error = None
    except Exception as error:
        conf, conf_error = None, "invalid yamllint configuration %s: %s" % (request["lintconf"], describe(error))
    for path in request["yamllint_files"]:
        if conf is None:
            out["yamllint"][path] = [{"line": 0, "column": 0, "level": "error", "message": conf_error, "rule": None}]
            continue
        try:
            # As yamllint's command line opens it: newline="" keeps \r\n
            # visible to the new-lines rule.
            with open(path, newline="") as handle:
                problems = list(linter.run(handle, conf, path))
            out["yamllint"][path] = [
                {"line": p.line, "column": p.column, "level": p.level, "message": p.desc, "rule": p.rule}
                for p in problems
            ]
        except OSError as error:
            out["yamllint"][path] = [{"line": 0, "column": 0, "level": "error", "message": str(error), "rule": None}]

json.dump(out, sys.stdout)
