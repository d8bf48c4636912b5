// Command gobench times Buildkite's Go Stacks API client against a server, for bench_vs_go.py.
//
// Usage: gobench <base-url> <calls> <pages>. It prints one JSON line: seconds per get_job call
// and per 1000-job list_scheduled_jobs page (decode included), after a short warm-up, and the
// process's CPU seconds per call and per page ("get_job_cpu", "page_cpu").
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/buildkite/stacksapi"
)

func main() {
	base, err := url.Parse(os.Args[1])
	if err != nil {
		panic(err)
	}
	calls, _ := strconv.Atoi(os.Args[2])
	pages, _ := strconv.Atoi(os.Args[3])
	client, err := stacksapi.NewClient("bkct_benchmark0000000000", stacksapi.WithBaseURL(base))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	job := stacksapi.GetJobRequest{StackKey: "s", JobUUID: "j-1"}
	page := stacksapi.ListScheduledJobsRequest{StackKey: "s", ClusterQueueKey: "q"}
	for i := 0; i < calls/10+1; i++ {
		if _, _, err := client.GetJob(ctx, job); err != nil {
			panic(err)
		}
	}
	start, cpu := time.Now(), cpuSeconds()
	for i := 0; i < calls; i++ {
		if _, _, err := client.GetJob(ctx, job); err != nil {
			panic(err)
		}
	}
	perCall := time.Since(start).Seconds() / float64(calls)
	perCallCPU := (cpuSeconds() - cpu) / float64(calls)
	start, cpu = time.Now(), cpuSeconds()
	for i := 0; i < pages; i++ {
		resp, _, err := client.ListScheduledJobs(ctx, page)
		if err != nil {
			panic(err)
		}
		if len(resp.Jobs) != 1000 {
			panic(fmt.Sprintf("page of %d jobs", len(resp.Jobs)))
		}
	}
	perPage := time.Since(start).Seconds() / float64(pages)
	perPageCPU := (cpuSeconds() - cpu) / float64(pages)
	out, _ := json.Marshal(map[string]float64{
		"get_job": perCall, "page": perPage, "get_job_cpu": perCallCPU, "page_cpu": perPageCPU,
	})
	fmt.Println(string(out))
}

// cpuSeconds is the user and system CPU time of this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
