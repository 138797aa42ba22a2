import numpy as np
from sklearn.metrics import roc_auc_score
from cardiosim.sim2real import train as T
T.set_threads(); b=T.get_budget("full").for_task("af")
te=np.load("/tmp/af_diag/test.npz"); g=te["groups"]; yte=te["y"]
for seed in (2,):
    d=np.load(f"/tmp/af_diag/c_{seed}.npz")
    m=T.make_model("af",2,2,b,seed); T.fit(m,d["x"],d["y"],b,seed,"cpu"); p=T.predict(m,te["x"],"cpu")[:,0]
    print("auroc",round(roc_auc_score(yte,p),3),"without patient 21",round(roc_auc_score(yte[g!="21"],p[g!="21"]),3))
    for gg in sorted(set(g)):
        mm=g==gg
        print(gg, "p(AF|sinus) median %.3f called %.2f"%(np.median(p[mm&(yte==0)]),np.mean(p[mm&(yte==0)]>=.5)) if (mm&(yte==0)).any() else "", "p(AF|AF) median %.3f"%np.median(p[mm&(yte==1)]) if (mm&(yte==1)).any() else "")
