// Runs the official Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance v1.5.1)
// against a running cloudgate controller.
//
// What this file adds to the suite, and nothing more:
//   - the profiles are the ones the GatewayClass's status.supportedFeatures allows (HTTPRoute ->
//     GATEWAY-HTTP, GRPCRoute -> GATEWAY-GRPC, TLSRoute -> GATEWAY-TLS), and the supported
//     features are inferred by the suite itself from that status;
//   - the tests listed in skip.txt (each needs a data plane, with its reason there) go to the
//     suite's own SkipTests, except those known-failures.txt lists for this provider (-mode):
//     those run, must fail, and are counted apart;
//   - timeouts sized for local backends;
//   - the ConformanceReport YAML goes to -report-output, and a summary of it is printed, ending
//     with one line "N passed, N failed, N skipped, N xfailed in Ts" (unique tests over all
//     profiles; xfailed are the provider's known failures).
//
// Every other option is the suite's own flag (-gateway-class, -report-output, -version, ...;
// see sigs.k8s.io/gateway-api/conformance/utils/flags). See run.sh for how it is started.
package conformance

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	v1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/flags"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"
	"sigs.k8s.io/yaml"
)

var (
	skipFile     = flag.String("skip-file", "skip.txt", "file listing the tests to skip, one per line with its reason (\"\" for none: a cluster with a data plane)")
	knownFile    = flag.String("known-failures", "known-failures.txt", "file listing, per provider, the tests its cloud cannot pass")
	statusHalves = flag.String("status-halves", "", "run only the tests this file lists, for their status checks: the status-half pass (see status-halves.txt)")
	localWaits   = flag.Bool("local-timeouts", true, "wait as long as local backends need; false keeps the suite's cloud-sized defaults")
	classTimeout = flag.Duration("class-timeout", 60*time.Second, "how long to wait for the GatewayClass to be Accepted with supportedFeatures")
)

// The profile each route feature makes us claim.
var profileOf = []struct {
	feature features.FeatureName
	profile suite.ConformanceProfileName
}{
	{features.SupportHTTPRoute, suite.GatewayHTTPConformanceProfileName},
	{features.SupportGRPCRoute, suite.GatewayGRPCConformanceProfileName},
	{features.SupportTLSRoute, suite.GatewayTLSConformanceProfileName},
}

func TestConformance(t *testing.T) {
	start := time.Now()
	opts := conformance.DefaultOptions(t)

	classFeatures := waitForClass(t, opts)
	t.Logf("GatewayClass %s status.supportedFeatures: %v", opts.GatewayClassName, sets.List(classFeatures))

	if opts.ConformanceProfiles.Len() == 0 {
		for _, p := range profileOf {
			if classFeatures.Has(p.feature) {
				opts.ConformanceProfiles.Insert(p.profile)
			}
		}
	}
	if opts.ConformanceProfiles.Len() == 0 {
		t.Fatalf("GatewayClass %s supports no route kind of any Gateway profile", opts.GatewayClassName)
	}
	// A single test (-run-test) turns off the suite's inference; give it the class's features.
	if opts.RunTest != "" && opts.SupportedFeatures.Len() == 0 {
		opts.SupportedFeatures = classFeatures
	}

	skips, err := readList(*skipFile, 1)
	if err != nil {
		t.Fatal(err)
	}
	known, err := readList(*knownFile, 2)
	if err != nil {
		t.Fatal(err)
	}
	expectFail := sets.New[string]()
	for _, k := range known {
		if k[0] == opts.Mode {
			expectFail.Insert(k[1])
		}
	}
	for _, s := range skips {
		if !expectFail.Has(s[0]) {
			opts.SkipTests = append(opts.SkipTests, s[0])
		}
	}
	halves := sets.New[string]()
	if *statusHalves != "" {
		// The status-half pass: only the listed tests run, their traffic subtests skipped by
		// go test's own -test.skip (run.sh passes it). Its results are not the suite's verdict
		// on those tests, so no report is written.
		list, err := readList(*statusHalves, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range list {
			halves.Insert(h[0])
		}
		opts.SkipTests = nil
		for _, ct := range tests.ConformanceTests {
			if !halves.Has(ct.ShortName) {
				opts.SkipTests = append(opts.SkipTests, ct.ShortName)
			}
		}
		opts.ReportOutputPath = ""
		expectFail = sets.New[string]()
	}
	if *localWaits {
		opts.TimeoutConfig = localTimeouts()
	}

	if opts.Implementation.Organization == "" {
		opts.Implementation = suite.ParseImplementation("cloudgate", "cloudgate", "https://github.com/cloudgate/cloudgate",
			orDefault(*flags.ImplementationVersion, "dev"), "https://github.com/cloudgate/cloudgate/issues")
	}

	started := &startedTests{names: sets.New[string]()}
	all := started.wrap(tests.ConformanceTests)

	cSuite, err := suite.NewConformanceTestSuite(opts)
	if err != nil {
		t.Fatalf("initialising the conformance suite: %v", err)
	}
	cSuite.Setup(t, all)
	if err := cSuite.Run(t, all); err != nil {
		t.Fatal(err)
	}
	report, err := cSuite.Report()
	if err != nil {
		t.Fatalf("building the report: %v", err)
	}
	raw, err := yaml.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	if opts.ReportOutputPath != "" {
		if err := os.WriteFile(opts.ReportOutputPath, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if halves.Len() > 0 {
		summariseHalves(report, started.list(), time.Since(start))
		return
	}
	summarise(report, started.list(), expectFail, opts.ReportOutputPath, time.Since(start))
}

// waitForClass waits until the GatewayClass is Accepted and lists its supported features
// (the suite reads them once, at start), and returns them.
func waitForClass(t *testing.T, opts suite.ConformanceOptions) suite.FeaturesSet {
	deadline := time.Now().Add(*classTimeout)
	var last string
	for {
		gwc := &v1.GatewayClass{}
		err := opts.Client.Get(context.Background(), types.NamespacedName{Name: opts.GatewayClassName}, gwc)
		switch {
		case err != nil:
			last = err.Error()
		case !accepted(gwc):
			last = fmt.Sprintf("not Accepted: %+v", gwc.Status.Conditions)
		case len(gwc.Status.SupportedFeatures) == 0:
			last = "no status.supportedFeatures"
		default:
			fs := suite.FeaturesSet{}
			for _, f := range gwc.Status.SupportedFeatures {
				fs.Insert(features.FeatureName(f.Name))
			}
			return fs
		}
		if time.Now().After(deadline) {
			t.Fatalf("GatewayClass %s not ready after %v: %s", opts.GatewayClassName, *classTimeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func accepted(gwc *v1.GatewayClass) bool {
	for _, c := range gwc.Status.Conditions {
		if c.Type == string(v1.GatewayClassConditionStatusAccepted) && c.Status == "True" && c.ObservedGeneration == gwc.Generation {
			return true
		}
	}
	return false
}

// readList reads lines of `keys` whitespace-separated fields followed by a reason ('#' starts a
// comment) and returns the fields. Every line needs a reason, and the last field must be a test
// of this suite version, so the list cannot rot.
func readList(path string, keys int) ([][]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := sets.New[string]()
	for _, ct := range tests.ConformanceTests {
		known.Insert(ct.ShortName)
	}
	var out [][]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) <= keys {
			return nil, fmt.Errorf("%s:%d: want %d field(s) and a reason: %q", path, n, keys, line)
		}
		if name := fields[keys-1]; !known.Has(name) {
			return nil, fmt.Errorf("%s:%d: %s is not a test of this conformance suite", path, n, name)
		}
		out = append(out, fields[:keys])
	}
	return out, sc.Err()
}

// localTimeouts: the local backends answer in milliseconds and the controller reconciles in
// well under a second, so waits are shorter than the suite's cloud-sized defaults (a failing
// test then fails in a minute, not three). Unset fields keep the suite's defaults.
func localTimeouts() config.TimeoutConfig {
	c := config.DefaultTimeoutConfig()
	c.GatewayMustHaveAddress = 60 * time.Second
	c.GatewayMustHaveCondition = 60 * time.Second
	c.GWCMustBeAccepted = 60 * time.Second
	c.ListenerSetMustHaveCondition = 60 * time.Second
	c.NamespacesMustBeReady = 120 * time.Second
	c.MaxTimeToConsistency = 15 * time.Second
	c.RouteMustHaveParents = 30 * time.Second
	c.HTTPRouteMustHaveCondition = 30 * time.Second
	c.TLSRouteMustHaveCondition = 30 * time.Second
	return c
}

// startedTests records which tests got past the suite's feature and skip checks.
type startedTests struct {
	mu    sync.Mutex
	names sets.Set[string]
}

func (s *startedTests) wrap(in []suite.ConformanceTest) []suite.ConformanceTest {
	out := slices.Clone(in)
	for i := range out {
		name, inner := out[i].ShortName, out[i].Test
		out[i].Test = func(t *testing.T, cs *suite.ConformanceTestSuite) {
			s.mu.Lock()
			s.names.Insert(name)
			s.mu.Unlock()
			inner(t, cs)
		}
	}
	return out
}

func (s *startedTests) list() sets.Set[string] {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names.Clone()
}

// summarise prints each profile's result from the report, then the unique tests over all
// profiles: failed and skipped are the report's lists; passed are the tests that ran and are
// not in a failed list; a known failure that failed is xfailed, one that passed is a failure
// (the list is stale).
func summarise(r *confv1.ConformanceReport, started, expectFail sets.Set[string], path string, took time.Duration) {
	failed, skipped := sets.New[string](), sets.New[string]()
	fmt.Printf("\nconformance report %s\n", orDefault(path, "(not written)"))
	fmt.Printf("  implementation: %s/%s %s, mode %s, Gateway API %s (%s)\n",
		r.Implementation.Organization, r.Implementation.Project, r.Implementation.Version, r.Mode, r.GatewayAPIVersion, r.GatewayAPIChannel)
	profiles := slices.Clone(r.ProfileReports)
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Name < profiles[j].Name })
	for _, p := range profiles {
		fmt.Printf("  %s: %s\n", p.Name, p.Summary)
		line := func(kind string, s confv1.Status) {
			fmt.Printf("    %-8s %3d passed %3d failed %3d skipped\n", kind, s.Passed, s.Failed, s.Skipped)
			if len(s.FailedTests) > 0 {
				fmt.Printf("             failed: %s\n", strings.Join(s.FailedTests, ", "))
			}
			failed.Insert(s.FailedTests...)
			skipped.Insert(s.SkippedTests...)
		}
		line("core", p.Core)
		if p.Extended != nil {
			line("extended", p.Extended.Status)
		}
	}
	passed := started.Difference(failed)
	xfailed := failed.Intersection(expectFail)
	unexpected := failed.Difference(expectFail)
	stale := passed.Intersection(expectFail)
	fmt.Printf("  passed: %s\n", strings.Join(sets.List(passed), ", "))
	if xfailed.Len() > 0 {
		fmt.Printf("  known failures of %s (see known-failures.txt): %s\n", r.Mode, strings.Join(sets.List(xfailed), ", "))
	}
	if unexpected.Len() > 0 {
		fmt.Printf("  FAILED: %s\n", strings.Join(sets.List(unexpected), ", "))
	}
	if stale.Len() > 0 {
		fmt.Printf("  FAILED: listed as known failures but passed (update known-failures.txt): %s\n", strings.Join(sets.List(stale), ", "))
	}
	fmt.Printf("%d passed, %d failed, %d skipped, %d xfailed in %.1fs\n",
		passed.Difference(stale).Len(), unexpected.Len()+stale.Len(), skipped.Len(), xfailed.Len(), took.Seconds())
}

// summariseHalves prints the status-half pass: each listed test that ran passed its status
// checks unless the suite marked it failed.
func summariseHalves(r *confv1.ConformanceReport, started sets.Set[string], took time.Duration) {
	failed := sets.New[string]()
	for _, p := range r.ProfileReports {
		failed.Insert(p.Core.FailedTests...)
		if p.Extended != nil {
			failed.Insert(p.Extended.FailedTests...)
		}
	}
	passed := started.Difference(failed)
	fmt.Printf("\nstatus halves (traffic subtests skipped; not in the report)\n")
	fmt.Printf("  passed: %s\n", strings.Join(sets.List(passed), ", "))
	if failed.Len() > 0 {
		fmt.Printf("  FAILED: %s\n", strings.Join(sets.List(failed), ", "))
	}
	fmt.Printf("%d passed, %d failed, 0 skipped, 0 xfailed in %.1fs\n", passed.Len(), failed.Len(), took.Seconds())
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
