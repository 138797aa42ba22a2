"""Cache physics (c) and classic (b) AF training sets for seeds 0-5 and the CPSC test set."""
import sys, time, numpy as np, pickle
import importlib; from cardiosim.sim2real import conditions as C, train as T, tasks; R = importlib.import_module("cardiosim.sim2real.run")
T.set_threads()
b = T.get_budget("full").for_task("af")
dd = tasks.resolve_data_dir(None)
t0=time.time()
sets = R.load_test_sets("af", T.get_budget("full"), dd)
s = sets["cpsc2021"]
np.savez("/tmp/af_diag/test.npz", x=s.x, y=s.y, groups=np.asarray(s.groups).astype(str), noisy=s.meta["noisy"])
print("test", s.x.shape, time.time()-t0, flush=True)
for cond in sys.argv[1:]:
    for seed in range(6):
        ts = C.get_condition(cond).build("af", b, seed, dd)
        np.savez(f"/tmp/af_diag/{cond}_{seed}.npz", x=ts.x, y=ts.y)
        print(cond, seed, ts.x.shape, ts.info, round(time.time()-t0), flush=True)
