"""Per config x seed: last-epoch real AUROC (diagnostic), simulated-validation loss/AUROC per epoch
(validation = the next seed's simulated data of the same condition, never real)."""
import sys, json, numpy as np, torch
from sklearn.metrics import roc_auc_score
from cardiosim.sim2real import train as T
T.set_threads(); nn=torch.nn
b = T.get_budget("full").for_task("af")
te=np.load("/tmp/af_diag/test.npz"); xte=te["x"]; yte=te["y"]
cond=sys.argv[1]; configs=sys.argv[2].split(",")
res={}
def bce(p,y): p=np.clip(p,1e-6,1-1e-6); return float(-np.mean(y*np.log(p)+(1-y)*np.log(1-p)))
for cfg in configs:
    sched, ep = cfg[:-2].rstrip("0123456789") or cfg, None
    sched = "".join(c for c in cfg if c.isalpha()); ep=int("".join(c for c in cfg if c.isdigit()))
    for seed in range(6):
        d=np.load(f"/tmp/af_diag/{cond}_{seed}.npz"); x,y=d["x"],d["y"]
        v=np.load(f"/tmp/af_diag/{cond}_{(seed+1)%6}.npz"); xv,yv=v["x"],v["y"]
        model=T.make_model("af",2,2,b,seed); torch.manual_seed(seed); rng=np.random.default_rng(np.random.SeedSequence([seed,99]))
        xt=torch.as_tensor(x); yt=torch.as_tensor(y); opt=torch.optim.Adam(model.parameters(),lr=b.lr)
        nb=len(range(0,len(x)-1,b.batch)); total=nb*ep; step=0; hist=[]
        swa=None; nswa=0
        for e in range(ep):
            model.train(); order=rng.permutation(len(xt))
            for i in range(0,len(order)-1,b.batch):
                idx=torch.as_tensor(order[i:i+b.batch])
                if len(idx)<2: continue
                if sched=="cos":
                    for pg in opt.param_groups: pg["lr"]=b.lr*0.5*(1+np.cos(np.pi*step/total))
                xb,yb=xt[idx],yt[idx]; lo=model(xb); ok=torch.isfinite(yb)
                loss=nn.functional.binary_cross_entropy_with_logits(lo[ok],yb[ok]); opt.zero_grad(); loss.backward(); opt.step(); step+=1
            if sched=="swa" and e>=ep//2:
                sd={k:v.detach().clone().float() for k,v in model.state_dict().items()}
                if swa is None: swa=sd
                else:
                    for k in swa:
                        if swa[k].is_floating_point(): swa[k]+= (sd[k]-swa[k])/(nswa+1)
                nswa+=1
            if sched=="swa" and e==ep-1:
                model.load_state_dict(swa)
                for m in model.modules():
                    if isinstance(m, nn.BatchNorm1d): m.reset_running_stats(); m.momentum=None
                model.train()
                with torch.no_grad():
                    for i in range(0,len(xt),b.batch): model(xt[i:i+b.batch])
            pv=T.predict(model,xv,"cpu")[:,0]; pt=T.predict(model,xte,"cpu")[:,0]
            hist.append(dict(val_loss=bce(pv,yv[:,0]),val_auc=roc_auc_score(yv[:,0],pv),te_auc=roc_auc_score(yte,pt),te_called=float(np.mean(pt>=.5))))
        res[f"{cfg}_{seed}"]=hist
        h=hist[-1]; print(cond,cfg,seed,"val_loss %.3f val_auc %.3f te_auc %.3f called %.2f | val_loss/epoch"%(h["val_loss"],h["val_auc"],h["te_auc"],h["te_called"]), " ".join("%.2f"%q["val_loss"] for q in hist), "| te/epoch", " ".join("%.2f"%q["te_auc"] for q in hist), flush=True)
    vs=[res[f"{cfg}_{s}"][-1] for s in range(6)]
    print("SUMMARY",cond,cfg,"val_loss %.3f val_auc %.3f te_auc mean %.3f min %.3f"%(np.mean([q["val_loss"] for q in vs]),np.mean([q["val_auc"] for q in vs]),np.mean([q["te_auc"] for q in vs]),np.min([q["te_auc"] for q in vs])),flush=True)
json.dump(res,open(f"/tmp/af_diag/sweep_{cond}_{sys.argv[2]}.json","w"))
