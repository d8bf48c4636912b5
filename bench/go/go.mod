module stacksapi-python/bench/gobench

go 1.24

require github.com/buildkite/stacksapi v1.0.2
