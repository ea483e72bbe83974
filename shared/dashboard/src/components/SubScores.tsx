import { CATEGORY_LABELS, type Category } from "../api";

const ORDER: Category[] = ["hook", "pacing", "emotion", "storytelling", "cta"];

/** The five sub-scores as labelled bars (a meter each, readable without the picture). */
export function SubScores({ scores }: { scores: Partial<Record<Category, number>> }) {
  return (
    <div className="subscores">
      <h2>By category</h2>
      <dl>
        {ORDER.filter((c) => scores[c] !== undefined).map((c) => {
          const value = scores[c] ?? 0;
          return (
            <div key={c} className="bar-row">
              <dt id={`sub-${c}`}>{CATEGORY_LABELS[c]}</dt>
              <dd>
                <meter min={0} max={100} low={40} high={70} optimum={100} value={value} aria-labelledby={`sub-${c}`}>
                  {Math.round(value)}
                </meter>
                <span className="bar-value">{Math.round(value)}</span>
              </dd>
            </div>
          );
        })}
      </dl>
    </div>
  );
}
